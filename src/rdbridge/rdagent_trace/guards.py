"""Checks the safe unpickler applies before it calls an allowed callable or applies a BUILD state.

Why: an allow-list of globals is not enough. Allowed numpy / pandas / builtin callables can still allocate without
bound from a tiny argument (`list(range(10**9))`, `bytearray(n)`, `ndarray(shape, 'O')`), a BUILD state can turn a
plain dtype into one whose bytes numpy reads as object pointers (memory corruption), pyarrow rebuilds arrays without
checking their buffers, and a time-zone name can be a file path. So:

* every call goes through `check_call`: only callables on an explicit call list may be called, each with a checker
  that bounds what it would allocate by the file's own size (`Budget`);
* BUILD goes through `check_build`: only the record stubs and the exact classes numpy / pandas rebuild by BUILD, each
  state checked (dtype states with names / fields / sub-arrays / foreign flags are refused);
* pyarrow arrays are rebuilt, then `validate(full=True)`-ed before anything can read them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rdbridge.rdagent_trace.errors import CorruptPickleError, ForbiddenClassError, TooLargeError

__all__ = ["Budget", "check_build", "check_call", "after_build", "wrap_pyarrow", "check_tz"]


@dataclass(frozen=True)
class Budget:
    """What one pickle may ask to allocate: a fixed allowance plus a multiple of its own size."""

    source: str
    file_bytes: int

    @property
    def max_bytes(self) -> int:
        return (1 << 20) + 16 * self.file_bytes

    @property
    def max_items(self) -> int:
        return self.max_bytes // 8

    def items(self, n: int, what: str) -> None:
        if n > self.max_items:
            raise TooLargeError(self.source, f"{what} asks for {n} items, more than a {self.file_bytes}-byte pickle "
                                             f"can hold (cap {self.max_items}); refused")

    def nbytes(self, n: int, what: str) -> None:
        if n > self.max_bytes:
            raise TooLargeError(self.source, f"{what} asks for {n} bytes, more than a {self.file_bytes}-byte pickle "
                                             f"can justify (cap {self.max_bytes}); refused")


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


# --------------------------------------------------------------------------------------------------------------------
# calls

def _sized(budget: Budget, what: str, *values: Any) -> None:
    """Every sized argument (list, range, str, ...) within the item cap; unsized iterables (generators) refused."""
    for v in values:
        if isinstance(v, (int, float, bool, complex, type)) or v is None:
            continue
        try:
            n = len(v)
        except TypeError:
            if hasattr(v, "__next__"):
                raise CorruptPickleError(budget.source, f"{what} called with an iterable of unknown size") from None
            continue
        except OverflowError:
            raise TooLargeError(budget.source, f"{what} called with an argument too long to count") from None
        budget.items(n, what)


def _check_builtin_container(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    what = _name(func)
    for v in (*args, *kwargs.values()):
        if isinstance(v, int) and not isinstance(v, bool) and func in (bytearray, bytes):
            budget.nbytes(v, what)
    _sized(budget, what, *args, *kwargs.values())


def _check_str_like(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _sized(budget, _name(func), *args, *kwargs.values())


_CODECS = {"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"}


def _check_codecs_encode(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if kwargs or not 1 <= len(args) <= 3 or not isinstance(args[0], str):
        raise CorruptPickleError(budget.source, "_codecs.encode called with unexpected arguments")
    if len(args) >= 2 and (not isinstance(args[1], str) or args[1].lower() not in _CODECS):
        raise ForbiddenClassError(budget.source, f"_codecs.encode({args[1]!r})", "only text codecs are allowed")


_DTYPE_DESCR = re.compile(r"[<>|=]?([?bBhHiIlLqQnNpPefdgFDGOMmSUVac])(\d{0,9})")


def _check_dtype_call(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """numpy pickles a dtype as `dtype('f8', False, True)`: only a plain descr string is accepted."""
    if kwargs or not args or not isinstance(args[0], str) or not all(isinstance(a, bool) for a in args[1:]):
        raise ForbiddenClassError(budget.source, f"numpy.dtype{args!r:.80}", "only a plain type code is accepted")
    m = _DTYPE_DESCR.fullmatch(args[0])
    if m is None:
        raise ForbiddenClassError(budget.source, f"numpy.dtype({args[0]!r:.60})", "only a plain type code is accepted")
    if m.group(2):
        budget.nbytes(int(m.group(2)), "numpy.dtype size")


def _shape_items(budget: Budget, shape: Any, what: str) -> int:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                               for s in shape):
        raise CorruptPickleError(budget.source, f"{what}: shape {shape!r:.60} is not a tuple of sizes")
    n = math.prod(shape)
    budget.items(n, what)
    return n


def _check_reconstruct(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or len(args) != 3 or args[0] is not np.ndarray:
        raise ForbiddenClassError(budget.source, "numpy _reconstruct of a non-ndarray type", "only plain arrays")
    _shape_items(budget, args[1], "numpy _reconstruct")


def _check_scalar(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], np.dtype):
        raise CorruptPickleError(budget.source, "numpy scalar called with unexpected arguments")
    dt = args[0]
    if dt.hasobject and dt != np.dtype(object):
        raise ForbiddenClassError(budget.source, f"numpy scalar of dtype {dt}", "raw bytes read as object pointers")
    if dt != np.dtype(object) and len(args) == 2 and not isinstance(args[1], (bytes, bytearray)):
        raise CorruptPickleError(budget.source, "numpy scalar without its raw bytes")


def _check_frombuffer(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np

    if kwargs or len(args) != 4 or not isinstance(args[1], np.dtype):
        raise CorruptPickleError(budget.source, "numpy _frombuffer called with unexpected arguments")
    if args[1].hasobject:
        raise ForbiddenClassError(budget.source, f"numpy _frombuffer of dtype {args[1]}",
                                  "raw bytes read as object pointers")
    if not isinstance(args[0], (bytes, bytearray, memoryview)):
        raise CorruptPickleError(budget.source, "numpy _frombuffer without a byte buffer")
    _shape_items(budget, args[2], "numpy _frombuffer")


def _check_pandas_call(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """pandas reconstructors: every container argument (one level into dicts / tuples) within the item cap, and
    every time-zone string a zone name, never a path."""
    what = _name(func)
    for v in (*args, *kwargs.values()):
        inner = list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else [v]
        _sized(budget, what, *(x for x in inner if not isinstance(x, (str, bytes))))
        if isinstance(v, dict) and v.get("tz") is not None:
            check_tz(budget.source, v["tz"])
    if kwargs.get("tz") is not None:
        check_tz(budget.source, kwargs["tz"])


def _check_ndarray_backed(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import numpy as np
    import pandas as pd

    if kwargs or len(args) != 3 or args[0] not in (pd.arrays.DatetimeArray, pd.arrays.TimedeltaArray):
        raise ForbiddenClassError(budget.source, f"__pyx_unpickle_NDArrayBacked({_name(args[0] if args else None)})",
                                  "only datetime / timedelta arrays")
    state = args[2]
    if state is not None:
        values = state[0] if isinstance(state, tuple) and state else None
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "Mmi" or values.dtype.hasobject:
            raise CorruptPickleError(budget.source, "datetime array state does not hold datetime64 values")
    _check_pandas_call(budget, func, args[2:], {})


_TZ_NAME = re.compile(r"(dateutil/)?[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}")


def check_tz(source: str, tz: Any) -> None:
    """A time-zone argument must be a zone name ('Asia/Shanghai', 'UTC', 'dateutil/Europe/Paris') or a
    `datetime.timezone`; a string that could name a file ('dateutil//etc/passwd', '../x') is refused."""
    import datetime as _dt

    if tz is None or isinstance(tz, _dt.timezone):
        return
    if isinstance(tz, str):
        if _TZ_NAME.fullmatch(tz) or not any(c in tz for c in "/\\.\x00"):
            return
        raise ForbiddenClassError(source, f"time zone {tz[:80]!r}", "a time-zone name that is a path")
    if isinstance(tz, (bytes, bytearray)):
        raise ForbiddenClassError(source, "time zone given as bytes", "a time-zone name that is a path")


def _check_tz_dtype(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for v in (*args, *kwargs.values()):
        if not (isinstance(v, str) and v in ("ns", "us", "ms", "s", "M8[ns]", "datetime64[ns]")):
            check_tz(budget.source, v)


def _check_timestamp(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`_unpickle_timestamp(value, freq, tz, reso)`; `Timestamp(value, ..., tz=...)`: the tz must be a zone name."""
    import pandas as pd

    tz = kwargs.get("tz", kwargs.get("tzinfo"))
    if func is not pd.Timestamp and len(args) >= 3:
        tz = args[2]
    elif func is pd.Timestamp:
        for v in args[1:]:
            if isinstance(v, (str, bytes)):
                check_tz(budget.source, v)
    check_tz(budget.source, tz)


def _check_nothing(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _sized(budget, _name(func), *args, *kwargs.values())


def _check_block_manager(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """pandas 3 pickles `BlockManager(blocks, axes)`; its constructor verifies that blocks and axes agree, so the
    check may not be switched off (a third argument False)."""
    if kwargs or len(args) not in (0, 2, 3) or (len(args) == 3 and args[2] is not True):
        raise ForbiddenClassError(budget.source, f"{_name(func)}{args!r:.60}", "unexpected block manager arguments")
    _sized(budget, _name(func), *args)
    if args:
        from pandas.core.internals.blocks import Block

        blocks, axes = args[0], args[1]
        if not isinstance(blocks, (list, tuple)) or not all(isinstance(b, Block) for b in blocks):
            raise CorruptPickleError(budget.source, "block manager built from something that is not pandas blocks")
        ndim = 1 if getattr(func, "__name__", "") == "SingleBlockManager" else 2
        check_placements(budget, axes, [(b.mgr_locs, b.values) for b in blocks], ndim)


def _check_unpickle_block(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`_unpickle_block(values, placement, ndim)`: pandas does not check that these agree."""
    import numpy as np
    import pandas as pd

    if kwargs or len(args) != 3 or args[2] not in (1, 2) or isinstance(args[2], bool):
        raise CorruptPickleError(budget.source, "pandas block with unexpected arguments")
    values, placement, ndim = args
    if not isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray)):
        raise CorruptPickleError(budget.source, "pandas block values are not an array")
    if isinstance(values, np.ndarray) and values.ndim != ndim or values.ndim > ndim:
        raise CorruptPickleError(budget.source, "pandas block has the wrong number of dimensions")
    n = values.shape[0] if (ndim == 2 and values.ndim == 2) else (1 if ndim == 2 else len(values))
    _locs(budget, placement, n)


Checker = Callable[[Budget, Any, tuple[Any, ...], dict[str, Any]], None]


def _call_table() -> dict[Any, Checker]:
    import collections
    import datetime
    import decimal
    import uuid

    import numpy as np
    import pandas as pd

    from rdbridge.rdagent_trace import safe_unpickle as su

    table: dict[Any, Checker] = {}
    for t in (list, tuple, set, frozenset, dict, bytearray, bytes, collections.OrderedDict, collections.deque):
        table[t] = _check_builtin_container
    for t in (str, int, float, complex, bool, slice, range, decimal.Decimal, uuid.UUID):
        table[t] = _check_str_like
    for t in (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.timezone):
        table[t] = _check_nothing
    for (mod, name), cands in su._EXACT.items():
        if mod == "builtins" and name[0].isupper():  # exception classes: value types
            table[su._resolve(cands)] = _check_nothing
    table[su._posix_path] = _check_str_like
    table[su._windows_path] = _check_str_like
    table[su._resolve(su._EXACT[("_codecs", "encode")])] = _check_codecs_encode
    table[np.dtype] = _check_dtype_call
    table[su._resolve(su._NUMPY["_reconstruct"])] = _check_reconstruct
    table[su._resolve(su._NUMPY["scalar"])] = _check_scalar
    table[su._resolve(su._NUMPY["_frombuffer"])] = _check_frombuffer
    table[su._resolve(su._PANDAS["_unpickle_block"])] = _check_unpickle_block
    for name in ("_new_Index", "_new_DatetimeIndex", "FrozenList", "CategoricalDtype",
                 "StringDtype", "Int64Dtype", "Int32Dtype", "Float64Dtype", "BooleanDtype",
                 "_timedelta_unpickle", "_nat_unpickle", "__nat_unpickle", *su._PANDAS_OFFSETS):
        try:
            table[su._resolve(su._PANDAS[name])] = _check_pandas_call
        except AttributeError:
            continue
    table[su._resolve(su._PANDAS["__pyx_unpickle_NDArrayBacked"])] = _check_ndarray_backed
    table[su._resolve(su._PANDAS["_unpickle_timestamp"])] = _check_timestamp
    table[pd.Timestamp] = _check_timestamp
    table[pd.Timedelta] = _check_pandas_call
    table[pd.DatetimeTZDtype] = _check_tz_dtype
    for name in ("BlockManager", "SingleBlockManager"):
        table[su._resolve(su._PANDAS[name])] = _check_block_manager
    return table


_TABLE: dict[Any, Checker] | None = None


def check_call(budget: Budget, func: Any, args: Any, kwargs: Any, *, how: str) -> None:
    """Refuse a call the allow-list does not expect, or one that would allocate beyond the budget."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _call_table()
    from rdbridge.rdagent_trace.safe_unpickle import RdagentRecord, defaultdict_of, wrapped_pyarrow

    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        raise CorruptPickleError(budget.source, f"{how}: arguments are not a tuple")
    if isinstance(func, type) and issubclass(func, RdagentRecord):
        return
    if func is defaultdict_of or func in wrapped_pyarrow():
        _sized(budget, _name(func), *args, *kwargs.values())
        return
    try:
        checker = _TABLE.get(func)
    except TypeError:  # unhashable: never something we allow-listed
        checker = None
    if checker is None:
        raise ForbiddenClassError(budget.source, f"{how} of {_name(func)}", "not a callable the allow-list calls")
    checker(budget, func, args, kwargs)


# --------------------------------------------------------------------------------------------------------------------
# BUILD


def _check_dtype_state(budget: Budget, inst: Any, state: Any) -> None:
    """A dtype state may only restate what the plain descr already built: no names, fields, sub-array, other flags."""
    bad = "dtype state adds names / fields / flags (raw bytes could be read as object pointers)"
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise ForbiddenClassError(budget.source, f"BUILD on numpy dtype {inst}", "unexpected dtype state")
    _version, endian, sub, names, fields, elsize, align, flags = state[:8]
    if endian not in ("<", ">", "|", "=") or sub is not None or names is not None or fields is not None:
        raise ForbiddenClassError(budget.source, f"BUILD on numpy dtype {inst}", bad)
    if elsize not in (-1, inst.itemsize) or align not in (-1, inst.alignment) or flags != inst.flags:
        raise ForbiddenClassError(budget.source, f"BUILD on numpy dtype {inst}", bad)
    if len(state) == 9 and state[8] is not None:
        meta = state[8]
        ok = (inst.kind in "Mm" and isinstance(meta, tuple) and len(meta) == 2 and meta[0] in (None, {})
              and isinstance(meta[1], tuple) and len(meta[1]) == 4 and isinstance(meta[1][0], bytes)
              and all(isinstance(x, int) for x in meta[1][1:]))
        if not ok and not (isinstance(meta, dict) and not meta):
            raise ForbiddenClassError(budget.source, f"BUILD on numpy dtype {inst}", "unexpected dtype metadata")


def _check_ndarray_state(budget: Budget, inst: Any, state: Any) -> None:
    import numpy as np

    if type(inst) is not np.ndarray or not isinstance(state, tuple) or len(state) not in (4, 5):
        raise ForbiddenClassError(budget.source, "BUILD on numpy ndarray", "unexpected array state")
    shape, dtype, _fortran, raw = state[-4:]
    if not isinstance(dtype, np.dtype):
        raise CorruptPickleError(budget.source, "array state without a dtype")
    n = _shape_items(budget, shape, "numpy array")
    budget.nbytes(n * max(dtype.itemsize, 1), "numpy array")
    if dtype.hasobject and not isinstance(raw, list):
        raise ForbiddenClassError(budget.source, f"BUILD of an array of dtype {dtype} from raw bytes",
                                  "raw bytes read as object pointers")
    if dtype.hasobject and (dtype != np.dtype(object) or len(raw) != n):
        # numpy copies the list into the array without checking its length (a fuzz-found segfault)
        raise CorruptPickleError(budget.source, f"object array of {n} items rebuilt from a list of {len(raw)}")
    if not dtype.hasobject and not isinstance(raw, (bytes, bytearray)):
        raise CorruptPickleError(budget.source, "array state of plain dtype without raw bytes")


def _check_dict_state(budget: Budget, inst: Any, state: Any) -> None:
    if not isinstance(state, (dict, tuple)):
        raise CorruptPickleError(budget.source, f"BUILD on {_name(type(inst))} with a {type(state).__name__} state")


def _locs(budget: Budget, locs: Any, n: int) -> Any:
    """A block's item positions as an int array of length `n` (slices expanded), or `CorruptPickleError`."""
    import numpy as np

    bad = CorruptPickleError(budget.source, "pandas block placement is not a valid list of positions")
    locs = getattr(locs, "indexer", locs)  # a BlockPlacement
    if isinstance(locs, slice):
        start, stop, step = locs.start or 0, locs.stop, 1 if locs.step is None else locs.step
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, stop, step)) or step <= 0 \
                or start < 0 or stop < 0 or len(range(start, stop, step)) != n:
            raise bad
        return np.arange(start, stop, step, dtype=np.int64)
    arr = np.asarray(locs) if isinstance(locs, (list, tuple, np.ndarray)) else None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iu" or len(arr) != n:
        raise bad
    return arr.astype(np.int64)


def check_placements(budget: Budget, axes: Any, specs: list[tuple[Any, Any]], ndim: int) -> None:
    """Blocks must exactly cover the manager's items: pandas' Cython writes block numbers at these positions without
    bounds checks, so an out-of-range or duplicate position is a heap write, not an exception."""
    import numpy as np
    import pandas as pd

    if not isinstance(axes, (list, tuple)) or len(axes) != ndim or not all(isinstance(a, pd.Index) for a in axes):
        raise CorruptPickleError(budget.source, "pandas block manager axes are not indexes")
    n_items = len(axes[0])
    positions = []
    for locs, values in specs:
        vdim = getattr(values, "ndim", None)
        if vdim is None or not isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray)):
            raise CorruptPickleError(budget.source, "pandas block values are not an array")
        if isinstance(values, np.ndarray) and values.dtype.hasobject is False and values.dtype.kind == "V":
            raise CorruptPickleError(budget.source, "pandas block of raw void values")
        if ndim == 2:
            if vdim == 2:
                if values.shape[1] != len(axes[1]):
                    raise CorruptPickleError(budget.source, "pandas block length does not match its frame")
                n = values.shape[0]
            elif vdim == 1 and not isinstance(values, np.ndarray):
                if len(values) != len(axes[1]):
                    raise CorruptPickleError(budget.source, "pandas block length does not match its frame")
                n = 1
            else:
                raise CorruptPickleError(budget.source, "pandas block has the wrong number of dimensions")
        else:
            if vdim != 1 or len(values) != n_items:
                raise CorruptPickleError(budget.source, "pandas series values do not match their index")
            n = n_items
        arr = _locs(budget, locs, n)
        if len(arr) and (arr.min() < 0 or arr.max() >= n_items):
            raise CorruptPickleError(budget.source, "pandas block placement outside the frame")
        positions.append(arr)
    if ndim == 1 and len(specs) != 1:
        raise CorruptPickleError(budget.source, "a pandas series has exactly one block")
    allpos = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    if len(allpos) != n_items or len(np.unique(allpos)) != n_items:
        raise CorruptPickleError(budget.source, "pandas blocks do not cover the frame's columns exactly once")


def _check_datetime_array_state(budget: Budget, inst: Any, state: Any) -> None:
    """`(dtype, values[, attrs])`: datetime64 / timedelta64 values (1-D or 2-D) and a datetime dtype."""
    import numpy as np
    import pandas as pd

    values = dtype = None
    if isinstance(state, tuple) and len(state) in (2, 3):  # pandas writes (dtype, values, attrs)
        values = next((x for x in state[:2] if isinstance(x, np.ndarray)), None)
        dtype = next((x for x in state[:2] if not isinstance(x, np.ndarray)), None)
    if isinstance(state, dict):
        values, dtype = state.get("_ndarray"), state.get("_dtype")
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "Mm" or values.ndim not in (1, 2):
        raise CorruptPickleError(budget.source, "datetime array state does not hold datetime64 values")
    if not (isinstance(dtype, np.dtype) and dtype.kind in "Mm") and not isinstance(dtype, pd.DatetimeTZDtype):
        raise CorruptPickleError(budget.source, "datetime array state without a datetime dtype")


def _check_manager_state(budget: Budget, inst: Any, state: Any) -> None:
    """pandas' manager state `(axes, values, items, {"0.14.1": {"axes": [...], "blocks": [{values, mgr_locs}]}})`."""
    inner = state[3].get("0.14.1") if isinstance(state, tuple) and len(state) == 4 and isinstance(state[3], dict) \
        else None
    if not isinstance(inner, dict) or not isinstance(inner.get("blocks"), list) \
            or not all(isinstance(b, dict) for b in inner["blocks"]):
        raise CorruptPickleError(budget.source, "block manager state is not pandas' format")
    ndim = 1 if type(inst).__name__ == "SingleBlockManager" else 2
    check_placements(budget, inner.get("axes"), [(b.get("mgr_locs"), b.get("values")) for b in inner["blocks"]],
                     ndim)


def _build_table() -> dict[type, Callable[[Budget, Any, Any], None]]:
    import numpy as np
    import pandas as pd

    from rdbridge.rdagent_trace import safe_unpickle as su

    table: dict[type, Callable[[Budget, Any, Any], None]] = {np.ndarray: _check_ndarray_state}
    for code in "?bhilqBHILQefdgFDGOMmSUV":
        try:
            table[type(np.dtype(code))] = _check_dtype_state
        except TypeError:
            continue
    import uuid

    for t in (pd.DataFrame, pd.Series, uuid.UUID):
        table[t] = _check_dict_state
    for t in (pd.arrays.DatetimeArray, pd.arrays.TimedeltaArray):
        table[t] = _check_datetime_array_state
    try:
        table[pd.arrays.ArrowStringArray] = _check_dict_state
    except AttributeError:  # pragma: no cover - pandas without pyarrow strings
        pass
    for name in ("BlockManager", "SingleBlockManager"):
        table[su._resolve(su._PANDAS[name])] = _check_manager_state
    for (mod, name), cands in su._EXACT.items():
        if mod == "builtins" and name[0].isupper():
            table[su._resolve(cands)] = _check_dict_state
    return table


_BUILD: dict[type, Callable[[Budget, Any, Any], None]] | None = None


def check_build(budget: Budget, inst: Any, state: Any) -> None:
    """Refuse BUILD unless `inst` is a record stub or exactly one of the classes numpy / pandas rebuild by BUILD."""
    global _BUILD
    if _BUILD is None:
        _BUILD = _build_table()
    from rdbridge.rdagent_trace.safe_unpickle import RdagentRecord

    if isinstance(inst, RdagentRecord):
        return
    checker = _BUILD.get(type(inst))
    if checker is None:
        target = getattr(inst, "__qualname__", None) or _name(type(inst))
        raise ForbiddenClassError(budget.source, f"BUILD on {target}", "only record stubs and the exact numpy / "
                                                                       "pandas classes rebuilt by BUILD")
    checker(budget, inst, state)


def after_build(budget: Budget, inst: Any) -> None:
    """Consistency checks once a pandas object has its state (block placements must match the axes)."""
    verify = getattr(inst, "_verify_integrity", None)
    if verify is not None and type(inst).__name__ in ("BlockManager", "SingleBlockManager"):
        try:
            verify()
        except Exception as e:  # noqa: BLE001 - any inconsistency means a forged frame
            raise CorruptPickleError(budget.source, f"inconsistent pandas blocks ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------------------------------------
# pyarrow


def wrap_pyarrow(name: str, func: Any) -> Callable[..., Any]:
    """`_restore_array` / `chunked_array` that validate what they build (`validate(full=True)`): pyarrow itself
    trusts the declared length and offsets, so a forged array would read heap memory."""

    def validated(*args: Any, **kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        try:
            out.validate(full=True)
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / ArrowIndexError / ...
            raise CorruptPickleError("<pickle>", f"invalid pyarrow array ({type(e).__name__}: {e})") from None
        return out

    validated.__qualname__ = f"validated_{name}"
    return validated
