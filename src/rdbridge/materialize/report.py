"""The portfolio report (Qlib's report_normal_1day) of an experiment workspace: ret.parquet, or legacy ret.pkl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdbridge.rdagent_trace import TraceReadError
from rdbridge.rdagent_trace.safe_unpickle import load_pickle_file

from rdbridge.materialize.errors import LoopInputError

REQUIRED_COLUMNS = ("return",)


def load_ret_pkl(path: Path) -> Any:
    """The one place a legacy `ret.pkl` is unpickled (allow-listed unpickler, never `pickle.load`).

    Kept as a single small function so the pool-isolated `safe_load_file` of rdagent_trace can replace it.
    """
    return load_pickle_file(path)


def find_report(ws_dir: Path) -> Path | None:
    for name in ("ret.parquet", "ret.pkl"):
        p = ws_dir / name
        if p.is_file():
            return p
    return None


def read_report(path: Path) -> Any:
    """The report as a DataFrame indexed by date, with at least a `return` column; LoopInputError otherwise."""
    import pandas as pd

    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else load_ret_pkl(path)
    except TraceReadError as e:
        raise LoopInputError(path, f"refused or unreadable pickle ({e})") from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for bad files
        raise LoopInputError(path, f"not a readable portfolio report ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(df, pd.DataFrame):
        raise LoopInputError(path, f"expected a DataFrame (Qlib's portfolio report), found {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LoopInputError(path, f"portfolio report lacks column(s) {missing}; has {list(df.columns)[:12]}")
    if not isinstance(df.index, pd.DatetimeIndex):
        try:
            df = df.set_axis(pd.DatetimeIndex(pd.to_datetime(df.index)), axis=0)
        except Exception:  # noqa: BLE001
            raise LoopInputError(path, "portfolio report index is not dates") from None
    if len(df) == 0:
        raise LoopInputError(path, "portfolio report is empty")
    return df.sort_index()
