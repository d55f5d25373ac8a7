"""A data service over a frame already in memory: tests, notebooks, and RD-Agent's ``daily_pv.h5`` once read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # pandas is imported only for a pandas frame: 0.3 s a process that reads files need not pay
    import pandas as pd

from rdbridge.engine.data._panel import (
    KEYS,
    DateLike,
    DataServiceError,
    densify,
    normalize,
    select,
    window_bounds,
)


def _is_pandas(frame: object) -> bool:
    """A pandas frame, told without importing pandas (a polars frame never needs it)."""
    return type(frame).__module__.startswith("pandas")


def _from_pandas(frame: pd.DataFrame) -> pl.DataFrame:
    """Accept Qlib's pandas shape: a (datetime, instrument) or (instrument, datetime) MultiIndex, or plain columns."""
    import pandas as pd

    if isinstance(frame.index, pd.MultiIndex):
        names = list(frame.index.names)
        if sorted(n for n in names if n) != sorted(KEYS):
            raise DataServiceError(
                f"in-memory frame: index levels {names} should be 'instrument' and 'datetime'; name them or reset_index()"
            )
        frame = frame.reset_index()
    return pl.from_pandas(frame)


class MemoryDataService:
    """Serves a long panel held in memory; the frame is normalised and densified once, at construction."""

    def __init__(self, frame: pl.DataFrame | pd.DataFrame, *, name: str = "in-memory frame") -> None:
        self.name = name
        raw = _from_pandas(frame) if _is_pandas(frame) else frame
        panel = normalize(raw, name)
        self._calendar = np.unique(panel["datetime"].to_numpy())
        self._panel = densify(panel, self._calendar)

    def calendar(self) -> np.ndarray:
        """Every trading day in the source (datetime64[us]), the axis rolling windows count on."""
        return self._calendar

    def instruments(self) -> list[str]:
        """All instrument codes the source holds, sorted."""
        return self._panel["instrument"].unique().sort().to_list()

    def fields(self) -> list[str]:
        """Field names (without ``$``) the source can load."""
        return [c for c in self._panel.columns if c not in KEYS]

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
        lo, hi = window_bounds(self._calendar, start, end, history)
        return select(self._panel, fields, instruments, lo, hi, self.name)
