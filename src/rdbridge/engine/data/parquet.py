"""A data service over a long-format Parquet panel: one file, or a directory of files (e.g. hive-partitioned).

Columns: ``instrument``, ``datetime`` and one column per field (``close`` or ``$close``). The file may omit
suspended days; they come back as NaN rows, so the result matches what Qlib's ``.bin`` files would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from rdbridge.engine.data._panel import (
    KEYS,
    DataServiceError,
    DateLike,
    densify,
    field_name,
    normalize,
    select,
    window_bounds,
)


class ParquetDataService:
    """Reads only the requested columns and instruments; the calendar is every date present in the source."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataServiceError(f"{self.path}: no such Parquet file or directory")
        target = self.path if self.path.is_file() else self.path / "**" / "*.parquet"
        self._scan = pl.scan_parquet(target)
        try:
            self._columns = self._scan.collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataServiceError(f"{self.path}: cannot read as Parquet ({exc})") from exc
        self._raw_by_field = {field_name(c): c for c in self._columns if c not in KEYS}
        missing = [k for k in KEYS if k not in self._columns]
        if missing:
            raise DataServiceError(
                f"{self.path}: missing column(s) {missing}; a long panel needs 'instrument', 'datetime' and fields "
                f"(found {self._columns})"
            )
        self._calendar: np.ndarray | None = None

    def calendar(self) -> np.ndarray:
        """Every distinct date in the source (datetime64[us]), read once."""
        if self._calendar is None:
            dates = normalize(
                self._scan.select("datetime").unique().with_columns(pl.lit("_").alias("instrument")).collect(),
                str(self.path),
            )
            self._calendar = dates["datetime"].to_numpy()
        return self._calendar

    def instruments(self) -> list[str]:
        """All instrument codes in the source, sorted."""
        return self._scan.select(pl.col("instrument").cast(pl.Utf8).unique().sort()).collect()["instrument"].to_list()

    def fields(self) -> list[str]:
        """Field names (without ``$``) the source can load."""
        return list(self._raw_by_field)

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str] | None = None,
        start: DateLike = None,
        end: DateLike = None,
        *,
        history: int = 0,
    ) -> pl.DataFrame:
        """Rows in [start - history trading days, end] for the given fields and instruments (None = all)."""
        names = [field_name(f) for f in fields]
        unknown = [f for f in names if f not in self._raw_by_field]
        if unknown:
            raise DataServiceError(f"{self.path}: unknown field(s) {unknown}; available fields are {self.fields()}")
        scan = self._scan.select(*KEYS, *(pl.col(self._raw_by_field[f]).alias(f) for f in dict.fromkeys(names)))
        if instruments is not None:
            scan = scan.filter(pl.col("instrument").cast(pl.Utf8).is_in(list(instruments)))
        calendar = self.calendar()
        panel = densify(normalize(scan.collect(), str(self.path)), calendar)
        lo, hi = window_bounds(calendar, start, end, history)
        return select(panel, names, None, lo, hi, str(self.path))


def write_parquet_panel(panel: pl.DataFrame, path: str | Path) -> Path:
    """Write a panel as one long Parquet file, atomically (temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    panel.write_parquet(tmp)
    tmp.replace(path)
    return path
