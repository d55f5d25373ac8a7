"""Read a Qlib data directory (``calendars/``, ``instruments/``, ``features/*/<field>.day.bin``) without qlib.

Each ``.bin`` is little-endian float32: the instrument's first calendar index, then one value per calendar day.
We memory-map nothing clever: files are small (4 bytes a day) and read whole, which is what makes this fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from rdbridge.engine.data._panel import (
    DataServiceError,
    DateLike,
    field_name,
    window_bounds,
)
from rdbridge.engine.data.qlib_bin_writer import code_to_dirname


def is_qlib_dir(path: str | Path) -> bool:
    """A Qlib data dir is recognised by its ``calendars/`` and ``features/`` folders."""
    path = Path(path)
    return (path / "calendars").is_dir() and (path / "features").is_dir()


class QlibBinDataService:
    """Serves panels from a Qlib data dir; ``market`` picks ``instruments/<market>.txt`` (default ``all``)."""

    def __init__(self, qlib_dir: str | Path, *, freq: str = "day", market: str = "all") -> None:
        self.path = Path(qlib_dir)
        self.freq = freq
        if not is_qlib_dir(self.path):
            raise DataServiceError(
                f"{self.path}: not a Qlib data dir (needs calendars/{freq}.txt, instruments/ and features/)"
            )
        self._calendar = self._read_calendar()
        self._market = market
        self._spans = self._read_instruments(market)

    def _read_calendar(self) -> np.ndarray:
        path = self.path / "calendars" / f"{self.freq}.txt"
        if not path.is_file():
            raise DataServiceError(f"{path}: calendar file missing; a Qlib dir needs calendars/{self.freq}.txt")
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        try:
            cal = np.array(lines, dtype="datetime64[us]")
        except ValueError as exc:
            raise DataServiceError(f"{path}: a line is not a date (expected YYYY-MM-DD per line): {exc}") from exc
        if len(cal) > 1 and not (np.diff(cal.astype(np.int64)) > 0).all():
            raise DataServiceError(f"{path}: dates are not strictly increasing")
        return cal

    def _read_instruments(self, market: str) -> dict[str, tuple[np.datetime64, np.datetime64]]:
        path = self.path / "instruments" / f"{market.lower()}.txt"
        if not path.is_file():
            raise DataServiceError(f"{path}: instruments file missing; pick a market with a file under instruments/")
        spans: dict[str, tuple[np.datetime64, np.datetime64]] = {}
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise DataServiceError(f"{path}:{n}: expected 'CODE<TAB>start<TAB>end', got {line!r}")
            try:
                lo, hi = np.datetime64(parts[1].strip(), "us"), np.datetime64(parts[2].strip(), "us")
            except ValueError as exc:
                raise DataServiceError(f"{path}:{n}: bad date in {line!r}") from exc
            code = parts[0].strip()
            old = spans.get(code)
            spans[code] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
        return spans

    def calendar(self) -> np.ndarray:
        """The dir's trading calendar (datetime64[us])."""
        return self._calendar

    def instruments(self) -> list[str]:
        """Instrument codes of the market file, sorted, in the case the file uses."""
        return sorted(self._spans)

    def fields(self) -> list[str]:
        """Fields with a ``.bin`` file for at least one instrument (sampled from the first instrument's folder)."""
        suffix = f".{self.freq}.bin"
        found: set[str] = set()
        for code in self.instruments()[:1]:
            folder = self.path / "features" / code_to_dirname(code)
            found |= {p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}")}
        return sorted(found)

    def _read_bin(self, path: Path) -> tuple[int, np.ndarray] | None:
        if not path.is_file():
            return None
        raw = np.fromfile(path, dtype="<f4")
        if raw.size == 0:
            raise DataServiceError(f"{path}: empty .bin file (needs the start index then the values)")
        start = raw[0]
        if not np.isfinite(start) or start < 0 or start != int(start) or int(start) + raw.size - 1 > len(self._calendar):
            raise DataServiceError(
                f"{path}: first value {start!r} is not a calendar index, or the data runs past the calendar end"
            )
        return int(start), raw[1:]

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str] | None = None,
        start: DateLike = None,
        end: DateLike = None,
        *,
        history: int = 0,
    ) -> pl.DataFrame:
        """Rows in [start - history trading days, end]; ``instruments=None`` means every code of the market."""
        names = list(dict.fromkeys(field_name(f) for f in fields))
        lo, hi = window_bounds(self._calendar, start, end, history)
        n_cal = len(self._calendar)
        lo_i = 0 if lo is None else int(np.searchsorted(self._calendar, lo, side="left"))
        hi_i = n_cal - 1 if hi is None else int(np.searchsorted(self._calendar, hi, side="right")) - 1
        codes = self.instruments() if instruments is None else sorted(dict.fromkeys(instruments))
        unknown = [c for c in codes if c not in self._spans]
        if unknown:
            raise DataServiceError(
                f"{self.path}: instrument(s) {unknown[:5]} not in instruments/{self._market}.txt"
            )
        seen_field = dict.fromkeys(names, False)
        inst_idx, cal_idx = [], []
        columns: dict[str, list[np.ndarray]] = {f: [] for f in names}
        for k, code in enumerate(codes):
            folder = self.path / "features" / code_to_dirname(code)
            series = {}
            for f in names:
                got = self._read_bin(folder / f"{f.lower()}.{self.freq}.bin")
                if got is not None:
                    series[f] = got
                    seen_field[f] = True
            if not series:
                continue
            first = min(s for s, _ in series.values())
            last = max(s + len(v) - 1 for s, v in series.values())
            a, b = max(first, lo_i), min(last, hi_i)
            if a > b:
                continue
            inst_idx.append(np.full(b - a + 1, k, dtype=np.uint32))
            cal_idx.append(np.arange(a, b + 1, dtype=np.int64))
            for f in names:
                out = np.full(b - a + 1, np.nan, dtype=np.float32)
                if f in series:
                    s, v = series[f]
                    # Overlap of [s, s+len) with [a, b]:
                    x0, x1 = max(s, a), min(s + len(v) - 1, b)
                    if x0 <= x1:
                        out[x0 - a : x1 - a + 1] = v[x0 - s : x1 - s + 1]
                columns[f].append(out)
        missing = [f for f, ok in seen_field.items() if not ok]
        if missing and codes:
            raise DataServiceError(
                f"{self.path}: no '<field>.{self.freq}.bin' file for field(s) {missing} in any requested instrument; "
                f"fields available: {self.fields()}"
            )
        if not inst_idx:
            return pl.DataFrame(
                schema={"instrument": pl.Utf8, "datetime": pl.Datetime("us"), **{f: pl.Float32 for f in names}}
            )
        inst = np.concatenate(inst_idx)
        cal = np.concatenate(cal_idx)
        return pl.DataFrame(
            {
                "instrument": pl.Series(codes, dtype=pl.Utf8).gather(inst),
                "datetime": pl.Series(self._calendar[cal]).cast(pl.Datetime("us")),
                **{f: np.concatenate(columns[f]) for f in names},
            }
        )
