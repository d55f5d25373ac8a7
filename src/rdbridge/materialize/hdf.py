"""Reading RD-Agent's HDF5 files (result.h5, daily_pv.h5) without letting them run code.

PyTables unpickles attribute values that look pickled and object atoms (`pickle.loads`), and pandas reads both, so
`pd.read_hdf` on a crafted file would run whatever the pickle names. `result.h5` is written by LLM-generated code: it is
untrusted. Before reading, PyTables' modules are pointed at a `pickle` stand-in whose `loads` is the allow-listed
unpickler of `rdagent_trace` (plain values, pandas offsets such as a DatetimeIndex's `freq` still load; anything else
is refused, which PyTables turns into the raw bytes for attributes and into an error for object arrays).
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

from rdbridge.rdagent_trace import TraceReadError, safe_loads

from rdbridge.materialize.errors import LoopInputError

_GUARD_NAME = "rdbridge_guarded_pickle"


def _guarded_loads(data: Any, *args: Any, **kwargs: Any) -> Any:
    return safe_loads(bytes(data), source="<HDF5 attribute or object atom>")


def _refuse_load(*args: Any, **kwargs: Any) -> Any:
    raise TraceReadError("<HDF5>", "reading a pickle stream from an HDF5 file is not allowed")


def install_guard() -> None:
    """Idempotent: PyTables' `pickle` becomes the guarded stand-in in this process."""
    import tables.atom
    import tables.attributeset

    guarded = types.ModuleType(_GUARD_NAME)
    guarded.__dict__.update({k: getattr(pickle, k) for k in ("dumps", "HIGHEST_PROTOCOL", "PicklingError",
                                                             "UnpicklingError")})
    guarded.loads = _guarded_loads  # type: ignore[attr-defined]
    guarded.load = _refuse_load  # type: ignore[attr-defined]
    for mod in (tables.attributeset, tables.atom):
        if getattr(mod.pickle, "__name__", "") != _GUARD_NAME:
            mod.pickle = guarded  # type: ignore[attr-defined]


def read_frame(path: Path, what: str) -> Any:
    """A DataFrame from an HDF5 file with a (datetime, instrument) index; LoopInputError naming the file otherwise."""
    import pandas as pd

    install_guard()
    try:
        obj = pd.read_hdf(path)
    except FileNotFoundError:
        raise LoopInputError(path, f"missing ({what})") from None
    except Exception as e:  # noqa: BLE001 - PyTables / HDF5 raise many types for damaged files
        raise LoopInputError(path, f"not a readable HDF5 {what} ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(obj, pd.Series):
        obj = obj.to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise LoopInputError(path, f"expected a DataFrame in the {what}, found {type(obj).__name__}")
    names = list(obj.index.names)
    if len(names) != 2 or set(names) != {"datetime", "instrument"}:
        raise LoopInputError(path, f"expected a (datetime, instrument) index in the {what}, found {names}")
    if names != ["datetime", "instrument"]:
        obj = obj.reorder_levels(["datetime", "instrument"])
    return obj
