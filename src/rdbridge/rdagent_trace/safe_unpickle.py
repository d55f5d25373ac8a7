"""An allow-listed unpickler for RD-Agent trace files, which must be treated as untrusted input.

A pickle is a program: `pickle.load` on a trace copied from another machine runs whatever it names. This unpickler
resolves only an explicit allow-list of globals:

* RD-Agent classes (`rdagent.*`, CamelCase names) are never imported: each becomes an `RdagentRecord` subclass that
  stores the pickled state as a plain `attrs` dict. rdagent functions (lower-case names) are refused.
* `pathlib` concrete paths become pure paths (a `WindowsPath` from a Windows trace cannot be built on Linux).
* The numpy / pandas / pyarrow reconstructors needed for the DataFrames, Series and Indexes RD-Agent logs, under the
  module paths of numpy 1.x/2.x and pandas 1.x-3.x (the pickle's module only has to be inside the same package: the
  object is always resolved from a fixed canonical location, never from the module the pickle names).
* A few harmless builtins / stdlib value types (`slice`, `set`, `datetime.timedelta`, ...).

Everything else (`os.system`, `builtins.eval`, `builtins.getattr`, `subprocess.Popen`, `copyreg._reconstructor`, ...)
raises `ForbiddenClassError` before it is resolved. We subclass the pure-Python `pickle._Unpickler` (not the C one) so
that two opcodes can be guarded too: BUILD on a class or function (which would let a pickle monkeypatch an allowed
class in this process) and the EXT opcodes (which read a process-wide cache that find_class does not see).
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
import types
from collections import OrderedDict, defaultdict
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from rdbridge.rdagent_trace.guards import Budget, after_build, check_build, check_call
from rdbridge.rdagent_trace.errors import (
    CorruptPickleError,
    ForbiddenClassError,
    TraceReadError,
    TooLargeError,
    TruncatedPickleError,
    UnreadableFileError,
)

__all__ = ["RdagentRecord", "SafeUnpickler", "safe_loads", "record_class"]


# --------------------------------------------------------------------------------------------------------------------
# RD-Agent objects as plain records


class RdagentRecord:
    """A stand-in for an RD-Agent object: its class path and the attribute dict it was pickled with.

    Pickle builds it with NEWOBJ (`cls.__new__(cls, *args)`) then BUILD (`__setstate__(state)`), where state is a dict
    or a `(dict, slots_dict)` pair. Nothing of rdagent is imported or called.
    """

    class_path: str = "rdagent"

    def __new__(cls, *args: Any, **kwargs: Any) -> "RdagentRecord":
        self = object.__new__(cls)
        object.__setattr__(self, "attrs", {})
        if args or kwargs:  # e.g. an Enum member pickled as (cls, (value,))
            self.attrs["__args__"] = list(args)
            if kwargs:
                self.attrs["__kwargs__"] = dict(kwargs)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE with the class as callable; state set in __new__
        pass

    def __setstate__(self, state: Any) -> None:
        slots: Any = None
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state, slots = state
        if isinstance(state, dict):
            self.attrs.update({str(k): v for k, v in state.items()})
        elif state is not None:
            self.attrs["__state__"] = state
        if isinstance(slots, dict):
            self.attrs.update({str(k): v for k, v in slots.items()})

    def __reduce__(self) -> tuple[Any, ...]:
        """Re-pickled (by the isolated reader, for its parent) as `cls()` then BUILD with the attribute dict."""
        return (type(self), (), dict(self.attrs))

    @property
    def class_name(self) -> str:
        return self.class_path.rsplit(".", 1)[-1]

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def __repr__(self) -> str:
        return f"<RdagentRecord {self.class_path} attrs={sorted(self.attrs)}>"


_RECORD_CLASSES: "OrderedDict[str, type[RdagentRecord]]" = OrderedDict()
RECORD_CACHE_SIZE = 1024  # distinct RD-Agent classes kept; a pickle naming thousands of made-up classes cannot grow it
_MAX_CLASS_PATH = 300


def record_class(class_path: str) -> type[RdagentRecord]:
    """The (cached, LRU-bounded) RdagentRecord subclass standing for `class_path`; `isinstance` checks stay cheap.

    Code compares records by `class_name`, never by class identity, so a class evicted and rebuilt is harmless.
    """
    cls = _RECORD_CLASSES.get(class_path)
    if cls is None:
        name = class_path.rsplit(".", 1)[-1]
        cls = type(name, (RdagentRecord,), {"class_path": class_path, "__module__": __name__})
        _RECORD_CLASSES[class_path] = cls
        while len(_RECORD_CLASSES) > RECORD_CACHE_SIZE:
            _RECORD_CLASSES.popitem(last=False)
    else:
        _RECORD_CLASSES.move_to_end(class_path)
    return cls


# The globals rdagent 1.0's fin_factor / fin_quant traces reference, for documentation and tests. Other CamelCase
# rdagent classes (feedback objects of CoSTEER, newer experiment classes) are rebuilt the same way: a record never
# runs code, so accepting them is safe, and refusing them would make whole loops unreadable on the next release.
KNOWN_RDAGENT_CLASSES = frozenset({
    "rdagent.components.coder.factor_coder.factor.FactorTask",
    "rdagent.components.coder.factor_coder.factor.FactorFBWorkspace",
    "rdagent.components.coder.model_coder.model.ModelTask",
    "rdagent.components.coder.model_coder.model.ModelFBWorkspace",
    "rdagent.scenarios.qlib.experiment.workspace.QlibFBWorkspace",
    "rdagent.scenarios.qlib.experiment.factor_experiment.QlibFactorExperiment",
    "rdagent.scenarios.qlib.experiment.model_experiment.QlibModelExperiment",
    "rdagent.core.proposal.Hypothesis",
    "rdagent.scenarios.qlib.proposal.quant_proposal.QlibQuantHypothesis",
    "rdagent.core.proposal.HypothesisFeedback",
    "rdagent.core.experiment.RunningInfo",
    "rdagent.core.experiment.Task",
    "rdagent.core.experiment.Workspace",
    "rdagent.core.experiment.FBWorkspace",
    "rdagent.core.experiment.Experiment",
    "rdagent.core.proposal.Trace",
})

_RDAGENT_MODULE = re.compile(r"rdagent(\.[A-Za-z_][A-Za-z0-9_]*)*")
_RDAGENT_CLASS = re.compile(r"[A-Z][A-Za-z0-9_]*")


# --------------------------------------------------------------------------------------------------------------------
# pathlib -> pure paths (functions, not classes: nothing a pickle could BUILD onto)


def _posix_path(*parts: Any) -> PurePosixPath:
    return PurePosixPath(*[str(p) for p in parts])


def _windows_path(*parts: Any) -> PureWindowsPath:
    return PureWindowsPath(*[str(p) for p in parts])


_PATHLIB = {"PosixPath": _posix_path, "PurePosixPath": _posix_path, "WindowsPath": _windows_path,
            "PureWindowsPath": _windows_path}


# --------------------------------------------------------------------------------------------------------------------
# numpy / pandas / pyarrow / stdlib: name -> where to resolve it from (first importable candidate wins)

_NP_MULTIARRAY = ["numpy._core.multiarray", "numpy.core.multiarray"]
_NUMPY: dict[str, list[tuple[str, str]]] = {
    "_reconstruct": [(m, "_reconstruct") for m in _NP_MULTIARRAY],
    "scalar": [(m, "scalar") for m in _NP_MULTIARRAY],
    "_frombuffer": [("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer")],
    "ndarray": [("numpy", "ndarray")],
    "dtype": [("numpy", "dtype")],
}

_PANDAS_PUBLIC = [
    "DataFrame", "Series", "Index", "MultiIndex", "RangeIndex", "DatetimeIndex", "TimedeltaIndex", "CategoricalIndex",
    "Categorical", "CategoricalDtype", "DatetimeTZDtype", "StringDtype", "Int64Dtype", "Int32Dtype", "Float64Dtype",
    "BooleanDtype", "Timestamp", "Timedelta",
]
_PANDAS_ARRAYS = ["DatetimeArray", "TimedeltaArray", "ArrowStringArray", "StringArray", "IntegerArray",
                  "FloatingArray", "BooleanArray"]
_PANDAS_OFFSETS = ["BusinessDay", "Day", "Hour", "Minute", "Second", "Milli", "Micro", "Nano", "Week", "MonthEnd",
                   "MonthBegin", "BusinessMonthEnd", "BusinessMonthBegin", "QuarterEnd", "QuarterBegin", "YearEnd",
                   "YearBegin", "CustomBusinessDay"]
_PANDAS: dict[str, list[tuple[str, str]]] = {
    **{n: [("pandas", n)] for n in _PANDAS_PUBLIC},
    **{n: [("pandas.arrays", n)] for n in _PANDAS_ARRAYS},
    **{n: [("pandas.tseries.offsets", n)] for n in _PANDAS_OFFSETS},
    # pandas 1.x numeric index classes, folded into Index since pandas 2.0
    **{n: [("pandas", "Index")] for n in ("Int64Index", "UInt64Index", "Float64Index", "NumericIndex")},
    "BlockManager": [("pandas.core.internals.managers", "BlockManager")],
    "SingleBlockManager": [("pandas.core.internals.managers", "SingleBlockManager")],
    "_unpickle_block": [("pandas._libs.internals", "_unpickle_block")],
    "new_block": [("pandas.core.internals.blocks", "new_block")],
    "_new_Index": [("pandas.core.indexes.base", "_new_Index")],
    "_new_DatetimeIndex": [("pandas.core.indexes.datetimes", "_new_DatetimeIndex")],
    "__pyx_unpickle_NDArrayBacked": [("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked")],
    "_unpickle_timestamp": [("pandas._libs.tslibs.timestamps", "_unpickle_timestamp")],
    "_timedelta_unpickle": [("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle")],
    "_nat_unpickle": [("pandas._libs.tslibs.nattype", "_nat_unpickle"),
                      ("pandas._libs.tslibs.nattype", "__nat_unpickle")],
    "__nat_unpickle": [("pandas._libs.tslibs.nattype", "__nat_unpickle"),
                       ("pandas._libs.tslibs.nattype", "_nat_unpickle")],
    "FrozenList": [("pandas.core.indexes.frozen", "FrozenList")],
}

# exact (module, name) pairs
_EXACT: dict[tuple[str, str], list[tuple[str, str]]] = {
    **{("builtins", n): [("builtins", n)] for n in
       ("slice", "set", "frozenset", "complex", "bytearray", "list", "dict", "tuple", "int", "float", "str", "bytes",
        "bool", "range")},
    **{("datetime", n): [("datetime", n)] for n in ("datetime", "date", "time", "timedelta", "timezone")},
    **{("collections", n): [("collections", n)] for n in ("OrderedDict", "deque")},
    ("collections", "defaultdict"): [("rdbridge.rdagent_trace.safe_unpickle", "defaultdict_of")],
    # exceptions RD-Agent keeps on feedback objects: value types, their construction runs no user code
    **{("builtins", n): [("builtins", n)] for n in
       ("Exception", "ValueError", "RuntimeError", "TypeError", "KeyError", "IndexError", "AttributeError", "OSError",
        "FileNotFoundError", "TimeoutError", "AssertionError", "ZeroDivisionError", "NotImplementedError",
        "MemoryError", "ImportError", "ModuleNotFoundError")},
    ("_codecs", "encode"): [("_codecs", "encode")],  # protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1')
    ("uuid", "UUID"): [("uuid", "UUID")],
    ("decimal", "Decimal"): [("decimal", "Decimal")],
    # pyarrow: only through validating wrappers (see guards.wrap_pyarrow); py_buffer / type_for_alias build no array
    **{("pyarrow.lib", n): [("rdbridge.rdagent_trace.safe_unpickle", f"_pa_{n}")] for n in
       ("_restore_array", "py_buffer", "type_for_alias", "chunked_array")},
}

def defaultdict_of(factory: Any = None, *args: Any) -> defaultdict[Any, Any]:
    """`collections.defaultdict` whose factory may only be a plain builtin type (a factory runs on every missing key,
    outside the unpickler's checks)."""
    if factory is not None and factory not in (list, dict, set, int, float, str, tuple):
        raise ForbiddenClassError("<pickle>", f"defaultdict({getattr(factory, '__qualname__', factory)!r})",
                                  "only builtin types as factories")
    return defaultdict(factory, *args)


def _pyarrow(name: str) -> Any:
    import pyarrow.lib

    from rdbridge.rdagent_trace.guards import wrap_pyarrow

    func = getattr(pyarrow.lib, name)
    return wrap_pyarrow(name, func) if name in ("_restore_array", "chunked_array") else func


_PA_WRAPPED: dict[str, Any] = {}


def wrapped_pyarrow() -> tuple[Any, ...]:
    """The pyarrow callables the unpickler may call (validated wrappers, plus py_buffer and type_for_alias)."""
    return tuple(_PA_WRAPPED.values())


def __getattr__(name: str) -> Any:  # module attribute for the four `_pa_*` names, built on first use
    if name.startswith("_pa_") and name[4:] in ("_restore_array", "py_buffer", "type_for_alias", "chunked_array"):
        if name not in _PA_WRAPPED:
            _PA_WRAPPED[name] = _pyarrow(name[4:])
        return _PA_WRAPPED[name]
    raise AttributeError(name)


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _resolve(candidates: list[tuple[str, str]]) -> Any:
    last: Exception | None = None
    for mod, attr in candidates:
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            last = e
    raise AttributeError(f"none of {candidates} is importable here: {last}")


_RESOLVED: dict[tuple[str, str], Any] = {}


def allowed_global(module: str, name: str) -> Any | None:
    """The object an allowed (module, name) stands for, or None when the pair is not allowed.

    Resolution never uses the pickle's module path directly (except to check the package), so a name cannot reach an
    unexpected submodule.
    """
    module = _PY2_MODULES.get(module, module)
    if len(module) + len(name) > _MAX_CLASS_PATH:
        return None
    if _in_package(module, "rdagent"):
        if _RDAGENT_MODULE.fullmatch(module) and _RDAGENT_CLASS.fullmatch(name):
            return record_class(f"{module}.{name}")
        return None
    if module in ("pathlib", "pathlib._local"):
        return _PATHLIB.get(name)
    table: dict[str, list[tuple[str, str]]] | None = None
    if _in_package(module, "numpy"):
        table = _NUMPY
    elif _in_package(module, "pandas"):
        table = _PANDAS
    if table is not None:
        cands = table.get(name)
        key = ("pandas" if table is _PANDAS else "numpy", name)
    else:
        cands = _EXACT.get((module, name))
        key = (module, name)
    if cands is None:
        return None
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve(cands)
    return _RESOLVED[key]


# --------------------------------------------------------------------------------------------------------------------
# the unpickler


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Unpickler that resolves only allow-listed globals (see module docstring). `source` names the file in errors.

    Every call (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) and every BUILD goes through `guards`, with a `Budget` tied to
    the size of the input. `progress`, when set, is told the name of every global resolved (the isolated worker uses
    it to name the class a crash happened in).
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    progress: Any = None

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, *, source: str | Path = "<bytes>",
                 size: int | None = None) -> None:
        super().__init__(file, fix_imports=True, encoding="ASCII", errors="strict")
        self.source = str(source)
        self._stream = file
        if size is None:
            size = len(file.getbuffer()) if isinstance(file, io.BytesIO) else 1 << 20
        self.budget = Budget(self.source, size)
        self._unbuilt: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class docstring
        if SafeUnpickler.progress is not None:
            SafeUnpickler.progress(f"{module}.{name}")
        obj = allowed_global(str(module), str(name))
        if obj is None:
            raise ForbiddenClassError(self.source, f"{module}.{name}")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenClassError(self.source, f"persistent id {pid!r}", "persistent ids are not used by RD-Agent")

    def _check_built(self, values: Any) -> None:
        """An object made empty (NEWOBJ, or a Cython unpickle without state) may not be used before its BUILD:
        pandas' Cython arrays dereference their unset buffer (a segfault found by the fuzzer)."""
        if not self._unbuilt:
            return
        for v in values:
            inner = list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, (tuple, list)) else [v]
            for x in (v, *inner):
                if id(x) in self._unbuilt:
                    raise CorruptPickleError(self.source, f"{type(x).__name__} used before its state was set")

    def _call(self, func: Any, args: Any, kwargs: Any, how: str) -> Any:
        if isinstance(args, tuple) and isinstance(kwargs, dict):
            self._check_built((*args, *kwargs.values()))  # first: even len() of an unbuilt array segfaults
        check_call(self.budget, func, args, kwargs, how=how)
        try:
            out = func(*args, **kwargs)
            if getattr(func, "__name__", "") == "__pyx_unpickle_NDArrayBacked" and len(args) == 3 \
                    and args[2] is None:
                self._mark_unbuilt(out)
            return out
        except TraceReadError as e:
            if e.path == "<pickle>":
                e.path = self.source
                e.args = (f"{self.source}: {e.message}",)
            raise

    def _guarded_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args, {}, "REDUCE")

    def _guarded_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def _guarded_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _new(self, cls: Any, args: Any, kwargs: Any) -> Any:
        if not isinstance(cls, type):
            raise CorruptPickleError(self.source, "NEWOBJ on something that is not a class")
        if not issubclass(cls, RdagentRecord):
            if args or kwargs:  # numpy / pandas objects are made empty by NEWOBJ, then filled by a checked BUILD
                if isinstance(args, tuple) and isinstance(kwargs, dict):
                    self._check_built((*args, *kwargs.values()))
                check_call(self.budget, cls, args, kwargs, how="NEWOBJ")
            elif cls not in _newobj_classes():
                raise ForbiddenClassError(self.source, f"NEWOBJ of {cls.__module__}.{cls.__qualname__}",
                                          "not a class the allow-list rebuilds by NEWOBJ")
        out = cls.__new__(cls, *args, **kwargs)
        if not issubclass(cls, RdagentRecord) and not issubclass(cls, BaseException):
            self._mark_unbuilt(out)
        return out

    def _mark_unbuilt(self, obj: Any) -> None:
        self._unbuilt[id(obj)] = obj  # the reference keeps the id from being reused

    def load(self) -> Any:  # noqa: D102 - an object never given its state is refused too
        out = super().load()
        if self._unbuilt:
            names = sorted({type(o).__name__ for o in self._unbuilt.values()})
            raise CorruptPickleError(self.source, f"object(s) never given their state: {', '.join(names)[:200]}")
        return out

    def _guarded_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        klass = self.find_class(module, name)
        args = self.pop_mark()
        self.append(self._call(klass, tuple(args), {}, "INST"))

    def _guarded_obj(self) -> None:
        args = self.pop_mark()
        cls = args.pop(0)
        self.append(self._call(cls, tuple(args), {}, "OBJ"))

    def _guarded_build(self) -> None:
        if len(self.stack) < 2:
            raise CorruptPickleError(self.source, "BUILD without an object")
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, type) or callable(inst) and not isinstance(inst, RdagentRecord):
            target = getattr(inst, "__qualname__", type(inst).__name__)
            raise ForbiddenClassError(self.source, f"BUILD on {target}", "a pickle may not modify a class or function")
        self._check_built((state,))
        check_build(self.budget, inst, state)
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        self._unbuilt.pop(id(inst), None)
        after_build(self.budget, inst)

    def _refuse_ext(self) -> None:
        raise ForbiddenClassError(self.source, "EXT opcode", "extension registry lookups are not allowed")

    def _checked_frame(self) -> None:
        """CPython's pickler writes frames of about 64 KiB; a huge declared size means the bytes are not a pickle."""
        size_bytes = self.read(8)
        if len(size_bytes) < 8:
            raise EOFError("pickle ends inside a frame header")
        size = int.from_bytes(size_bytes, "little")
        if size > _MAX_FRAME:
            raise CorruptPickleError(self.source, f"not a pickle (declares a frame of {size} bytes)")
        self._unframer.load_frame(size)

    def consumed_all(self, total: int) -> bool:
        """Whether the reader had used up all `total` input bytes when it stopped (so the pickle was cut short)."""
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if frame is not None and frame.tell() < len(frame.getbuffer()):
            return False
        return self._stream.tell() >= total

    dispatch[pickle.BUILD[0]] = _guarded_build
    dispatch[pickle.REDUCE[0]] = _guarded_reduce
    dispatch[pickle.NEWOBJ[0]] = _guarded_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _guarded_newobj_ex
    dispatch[pickle.INST[0]] = _guarded_inst
    dispatch[pickle.OBJ[0]] = _guarded_obj
    dispatch[pickle.FRAME[0]] = _checked_frame
    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse_ext
    del _op


_NEWOBJ: frozenset[type] | None = None


def _newobj_classes() -> frozenset[type]:
    """Classes pickle makes empty with `cls.__new__(cls)` before a checked BUILD fills them."""
    global _NEWOBJ
    if _NEWOBJ is None:
        import pandas as pd

        names = ["DataFrame", "Series", "BlockManager", "SingleBlockManager", "DatetimeArray", "TimedeltaArray",
                 "ArrowStringArray"]
        import uuid

        found = {_resolve(_PANDAS[n]) for n in names if n in _PANDAS} | {pd.DataFrame, pd.Series, uuid.UUID}
        found |= {_resolve(c) for (m, n), c in _EXACT.items() if m == "builtins" and n[0].isupper()}
        _NEWOBJ = frozenset(found)
    return _NEWOBJ


_MAX_FRAME = 16 << 20


def safe_loads(data: bytes, *, source: str | Path = "<bytes>") -> Any:
    """Unpickle `data` with `SafeUnpickler`; every failure is a `TraceReadError` naming `source`.

    A failure after the whole input was consumed means the pickle was cut short (a copy interrupted, or RD-Agent still
    writing): `TruncatedPickleError`. A failure before that means the bytes are not a pickle: `CorruptPickleError`.
    """
    if not data:
        raise TruncatedPickleError(source, "empty file (0 bytes): RD-Agent may still be writing it, or it was cut")
    unpickler = SafeUnpickler(io.BytesIO(data), source=source)
    try:
        return unpickler.load()
    except TraceReadError:
        raise
    except RecursionError:
        raise CorruptPickleError(source, "pickle nests too deeply to be a trace object") from None
    except MemoryError:
        raise TooLargeError(source, "pickle asks for more memory than the reader's limit") from None
    except Exception as e:  # noqa: BLE001 - any other failure of a data-only reconstruction means bad bytes
        text = str(e) or type(e).__name__
        if unpickler.consumed_all(len(data)):
            raise TruncatedPickleError(source, f"pickle ends early after {len(data)} bytes ({text}): the file was cut "
                                               "or is still being written; re-copy it from the RD-Agent machine"
                                       ) from None
        raise CorruptPickleError(source, f"not a readable pickle ({type(e).__name__}: {text} at byte "
                                         f"{unpickler._stream.tell()})") from None


def load_pickle_file(path: Path, *, max_bytes: int | None = None, trusted_roots: tuple[Path, ...] = ()) -> Any:
    """Read (regular file only, size-capped) and safely unpickle a plain pickle such as a legacy `ret.pkl`, in this
    process. Callers outside the isolated worker use `rdagent_trace.isolation.safe_load_file` instead."""
    from rdbridge.rdagent_trace.files import default_max_pickle_bytes, read_regular

    data = read_regular(Path(path), max_bytes or default_max_pickle_bytes(), trusted_roots)
    return safe_loads(data, source=path)


def is_record(obj: Any, *class_names: str) -> bool:
    """True when `obj` is an RdagentRecord whose class name is one of `class_names` (any record if none given)."""
    return isinstance(obj, RdagentRecord) and (not class_names or obj.class_name in class_names)

