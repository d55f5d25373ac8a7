"""Crafted hostile trace pickles, one per attack of issue 23, written as raw opcodes or through `__reduce__` stand-ins.

Each builder returns the bytes of a plain (unsigned, legacy-format) pickle. They are only ever fed to the safe reader.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any


class _Call:
    """Pickles as `func(*args)` (+ BUILD `state` when given): lets a test write the REDUCE a pickle may contain."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=4)


def dtype_object_pointer() -> bytes:
    """1. A fresh dtype('V8') re-BUILT with an object field and refcount flags; then an ndarray of it from 8 raw bytes
    (numpy would read them as a PyObject*)."""
    import numpy as np

    dt = _Call(np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 63))
    arr = _Call(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, (1,), dt, False, b"\x41" * 8))
    return dumps(arr)


def pyarrow_overlong(length: int = 100_000_000) -> bytes:
    """2. `pyarrow.lib._restore_array` declaring far more values than its 16-byte buffer holds."""
    import pyarrow as pa

    func, (data,) = pa.array([1, 2], type=pa.int64()).__reduce__()
    forged = (data[0], length, *data[2:])
    return dumps(_Call(func, (forged,)))


def list_of_range(n: int = 10**9) -> bytes:
    """3a. `list(range(1e9))`: ~36 GB from a pickle of a few dozen bytes."""
    return dumps(_Call(list, (range(n),)))


def bytearray_bomb(n: int = 10**11) -> bytes:
    """3b. `bytearray(n)`."""
    return dumps(_Call(bytearray, (n,)))


def dataframe_bomb(n: int = 60_000) -> bytes:
    """3c. `DataFrame(0, index=range(n), columns=range(n))`: n*n cells from a scalar."""
    import pandas as pd

    return dumps(_Call(pd.DataFrame, (0, range(n), range(n))))


def object_ndarray_bomb() -> bytes:
    """3d. `ndarray((60000, 60000), 'O')`."""
    import numpy as np

    return dumps(_Call(np.ndarray, ((60_000, 60_000), "O")))


def build_on_cython_function() -> bytes:
    """4. BUILD on a live Cython function (`cython_function_or_method`): would set its `__doc__` process-wide."""
    out = io.BytesIO()
    out.write(b"\x80\x02cpandas._libs.tslibs.timestamps\n_unpickle_timestamp\n")
    out.write(b"}q\x00X\x07\x00\x00\x00__doc__q\x01X\x05\x00\x00\x00pwnedq\x02sb.")
    return out.getvalue()


def tz_path(path: str = "/etc/passwd") -> bytes:
    """5. `DatetimeTZDtype('ns', 'dateutil/<path>')`: dateutil would open the path (and the error would say if it
    exists)."""
    import pandas as pd

    return dumps(_Call(pd.DatetimeTZDtype, ("ns", f"dateutil/{path}")))


def deep_hypothesis(depth: int = 1_000_000) -> bytes:
    """8. An RD-Agent Hypothesis whose `hypothesis` text is a list nested `depth` deep (built iteratively by the
    unpickler, but `str()` of it recurses)."""
    out = io.BytesIO()
    out.write(b"\x80\x02crdagent.core.proposal\nHypothesis\n)\x81}")
    out.write(b"X" + struct.pack("<I", 10) + b"hypothesis")
    out.write(b"]" * depth + b"a" * (depth - 1))
    out.write(b"sb.")
    return out.getvalue()


def many_record_classes(n: int) -> bytes:
    """A list of `n` records, each of a different made-up RD-Agent class (grows an unbounded class cache)."""
    out = io.BytesIO()
    out.write(b"\x80\x02]")
    for i in range(n):
        out.write(f"crdagent.fake\nC{i}\n".encode() + b")\x81a")
    out.write(b".")
    return out.getvalue()


def unbuilt_datetime_array() -> bytes:
    """Fuzz-found: a DatetimeArray made by pandas' Cython unpickle without state, used (as DatetimeIndex data) before
    any BUILD gives it values: even its len() dereferences an unset buffer (segfault)."""
    import pandas as pd
    from pandas._libs.arrays import __pyx_unpickle_NDArrayBacked as unpickle_backed
    from pandas.core.indexes.datetimes import _new_DatetimeIndex

    arr = _Call(unpickle_backed, (pd.arrays.DatetimeArray, 82904607, None))
    return dumps(_Call(_new_DatetimeIndex, (pd.DatetimeIndex, {"data": arr})))


def short_object_array() -> bytes:
    """Fuzz-found: an object array of 5 items BUILT from a list of 2 (numpy copies past the list's end)."""
    import numpy as np

    return dumps(_Call(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                       (1, (5,), np.dtype("O"), False, ["a", "b"])))
