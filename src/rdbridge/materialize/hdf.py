"""Reading RD-Agent's HDF5 files (result.h5, daily_pv.h5) without letting them run code.

PyTables unpickles attribute values that look pickled and object atoms (`pickle.loads`), and pandas reads both, so
`pd.read_hdf` on a crafted file would run whatever the pickle names. `result.h5` is written by LLM-generated code: it is
untrusted. Before reading, PyTables' modules are pointed at a `pickle` stand-in whose `loads` is the allow-listed
unpickler of `rdagent_trace` (plain values, pandas offsets such as a DatetimeIndex's `freq` still load; anything else
is refused, which PyTables turns into the raw bytes for attributes and into an error for object arrays).

`read_panel` is what the factor statistics use: the file's rows as flat arrays. The layout pandas' `to_hdf` writes by
default (a fixed-format DataFrame with a (datetime, instrument) MultiIndex and numeric blocks, which is what
RD-Agent's factor code and data preparation write) is read straight from its arrays with PyTables, ~3x cheaper than
`pd.read_hdf`, which builds the same values through a MultiIndex; any other layout (a Series, a table-format store,
time zones, object columns, an unexpected node or attribute) goes through `pd.read_hdf` as before, so both paths give
the same rows and the same errors.
"""

from __future__ import annotations

import pickle
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class Panel:
    """A (datetime, instrument)-indexed frame as flat arrays, one entry per row, columns in the file's order."""

    datetime: np.ndarray  # datetime64[ns]
    instrument: np.ndarray  # str objects
    labels: list[Any]
    columns: list[Any]  # per label: a numpy array or a pandas Series (extension dtypes keep their own dtype)

    def numeric(self, i: int) -> np.ndarray | None:
        """Column i as float64 with NaN for missing values; None when it is not numeric (int, uint, float, bool)."""
        col = self.columns[i]
        if col.dtype.kind not in "fiub":
            return None
        if isinstance(col, np.ndarray):
            return col.astype("float64", copy=False)
        return col.to_numpy(dtype="float64", na_value=np.nan)  # type: ignore[no-any-return]


_DATETIME_KIND = re.compile(r"datetime64(?:\[(s|ms|us|ns)\])?")
_STRING_ATTRS = {"kind", "name", "nan_rep", "transposed"} | {f"axis1_name{n}" for n in ("datetime", "instrument")}


def _text(attrs: Any, name: str) -> str | None:
    return str(attrs[name]) if name in attrs else None


def _strings(node: Any, encoding: str) -> list[str] | None:
    """A pandas 'string' index node decoded, or None when pandas would turn a value into NaN (its nan_rep)."""
    values = [b.decode(encoding) for b in node.read().tolist()]
    nan_rep = _text(node._v_attrs, "nan_rep") or "nan"
    return None if nan_rep in values else values


def _arrays(group: Any, names: set[str]) -> dict[str, Any] | None:
    import tables

    if set(group._v_children) != names:
        return None
    nodes = {n: group._f_get_child(n) for n in names}
    for node in nodes.values():
        if type(node) not in (tables.Array, tables.CArray) or node.atom.kind not in ("int", "uint", "float", "bool",
                                                                                       "string"):
            return None
    return nodes


def _fast_panel(path: Path) -> Panel | None:
    """The default pandas fixed-format DataFrame, read from its arrays; None for any other layout."""
    import tables

    with tables.open_file(str(path), mode="r") as f:
        groups = list(f.root._v_children.values())
        if len(groups) != 1 or not isinstance(groups[0], tables.Group):
            return None
        g = groups[0]
        a = g._v_attrs
        if (_text(a, "pandas_type") != "frame" or "table_type" in a or _text(a, "axis0_variety") != "regular"
                or _text(a, "axis1_variety") != "multi" or int(a["axis1_nlevels"]) != 2
                or _text(a, "encoding") not in ("UTF-8", "utf-8", "utf8") or _text(a, "errors") != "strict"):
            return None
        nblocks = int(a["nblocks"])
        blocks = [(f"block{i}_items", f"block{i}_values") for i in range(nblocks)]
        if any(_text(a, f"{items}_variety") != "regular" for items, _ in blocks):
            return None
        nodes = _arrays(g, {"axis0", "axis1_level0", "axis1_level1", "axis1_label0", "axis1_label1",
                            *(n for b in blocks for n in b)})
        if nodes is None:
            return None
        for node in nodes.values():
            extra = set(node._v_attrs._v_attrnamesuser) - _STRING_ATTRS
            if extra or _text(node._v_attrs, "transposed") != "True":
                return None  # tz, freq, value_type (datetime columns), empty-array sentinels...: pandas knows
        labels = _strings(nodes["axis0"], "utf-8")
        if labels is None or len(set(labels)) != len(labels) or _text(nodes["axis0"]._v_attrs, "kind") != "string":
            return None
        levels: dict[str, np.ndarray] = {}
        for i in (0, 1):
            level, codes = nodes[f"axis1_level{i}"], nodes[f"axis1_label{i}"].read()
            kind, name = _text(level._v_attrs, "kind") or "", _text(level._v_attrs, "name")
            if name == "datetime" and (m := _DATETIME_KIND.fullmatch(kind)):
                raw = level.read()
                if raw.dtype != np.int64:
                    return None
                values = raw.view(f"datetime64[{m.group(1) or 'ns'}]").astype("datetime64[ns]")
            elif name == "instrument" and kind == "string":
                decoded = _strings(level, "utf-8")
                if decoded is None:
                    return None
                values = np.array(decoded, dtype=object)
            else:
                return None
            if (len(np.unique(values)) != len(values) or codes.ndim != 1 or codes.dtype.kind not in "iu"
                    or (len(codes) and (codes.min() < 0 or codes.max() >= len(values)))):
                return None
            levels[name] = values[codes]
        if set(levels) != {"datetime", "instrument"}:
            return None
        n_rows = len(levels["datetime"])
        if len(levels["instrument"]) != n_rows:
            return None
        columns: list[Any] = [None] * len(labels)
        position = {label: i for i, label in enumerate(labels)}
        for items_name, values_name in blocks:
            items = _strings(nodes[items_name], "utf-8")
            block = nodes[values_name].read()
            if (items is None or block.ndim != 2 or block.shape != (n_rows, len(items))
                    or any(it not in position for it in items)):
                return None
            for j, it in enumerate(items):
                if columns[position[it]] is not None:
                    return None
                columns[position[it]] = block[:, j]
        if any(c is None for c in columns):
            return None
        return Panel(levels["datetime"], levels["instrument"], labels, columns)


def _panel_from_frame(obj: Any) -> Panel:
    import pandas as pd

    idx = obj.index
    return Panel(datetime=pd.DatetimeIndex(idx.get_level_values("datetime")).as_unit("ns").to_numpy(),
                 instrument=idx.get_level_values("instrument").astype(str).to_numpy(dtype=object),
                 labels=list(obj.columns), columns=[obj.iloc[:, i] for i in range(obj.shape[1])])


def read_panel(path: Path, what: str) -> Panel:
    """The rows of an HDF5 file holding a (datetime, instrument)-indexed frame; LoopInputError naming the file when it
    is missing or unreadable (the same errors as `read_frame`)."""
    install_guard()
    try:
        fast = _fast_panel(path)
    except Exception:  # noqa: BLE001 - damaged or odd file: pandas reads it or says what is wrong
        fast = None
    if fast is not None:
        return fast
    frame = read_frame(path, what)
    try:
        return _panel_from_frame(frame)
    except Exception as e:  # noqa: BLE001 - e.g. a datetime level that holds no dates
        raise LoopInputError(path, f"unusable (datetime, instrument) index in the {what} ({type(e).__name__}: "
                                   f"{str(e)[:200]})") from None
