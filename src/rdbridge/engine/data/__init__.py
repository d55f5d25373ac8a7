"""Data services: where the engine's panels come from.

Every service returns the same long layout (see ``_panel``): ``instrument``, ``datetime`` and Float32 fields,
dense per instrument from listing to delisting with NaN rows on suspended days, exactly what Qlib's ``.bin``
files hold. ``open_data_service`` picks the implementation from the path so callers never branch on format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from rdbridge.engine.data._panel import DataServiceError, DateLike
from rdbridge.engine.data.memory import MemoryDataService
from rdbridge.engine.data.parquet import ParquetDataService, write_parquet_panel
from rdbridge.engine.data.qlib_bin import QlibBinDataService, is_qlib_dir
from rdbridge.engine.data.qlib_bin_writer import write_qlib_dir

__all__ = [
    "DataService",
    "DataServiceError",
    "MemoryDataService",
    "ParquetDataService",
    "QlibBinDataService",
    "open_data_service",
    "write_parquet_panel",
    "write_qlib_dir",
]


@runtime_checkable
class DataService(Protocol):
    """A source of panels. ``history`` asks for that many extra trading days before ``start`` (window warm-up)."""

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str] | None = None,
        start: DateLike = None,
        end: DateLike = None,
        *,
        history: int = 0,
    ) -> pl.DataFrame: ...

    def calendar(self) -> np.ndarray: ...

    def instruments(self) -> list[str]: ...

    def fields(self) -> list[str]: ...


def open_data_service(path: str | Path) -> DataService:
    """A Qlib dir (has ``calendars/`` and ``features/``) or Parquet (a ``.parquet`` file, or a dir of them)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataServiceError(f"{path}: no such file or directory (expected a Qlib data dir or a Parquet panel)")
    if path.is_dir() and is_qlib_dir(path):
        return QlibBinDataService(path)
    if path.is_file() and path.suffix == ".parquet":
        return ParquetDataService(path)
    if path.is_dir() and next(path.rglob("*.parquet"), None) is not None:
        return ParquetDataService(path)
    raise DataServiceError(
        f"{path}: not a data source; give a Qlib data dir (calendars/, instruments/, features/) "
        "or a long-format .parquet file / directory of .parquet files"
    )
