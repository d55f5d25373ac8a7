"""Read a Qlib data directory (``calendars/``, ``instruments/``, ``features/*/<field>.day.bin``) without qlib.

Each ``.bin`` is little-endian float32: the instrument's first calendar index, then one value per calendar day.
We memory-map nothing clever: files are small (4 bytes a day) and read whole, which is what makes this fast.
"""

from __future__ import annotations

import os
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

    def _read_bin(self, path: str) -> tuple[int, np.ndarray] | None:
        """(first calendar index, values) of one ``.bin``; None when the instrument lacks that field."""
        try:
            with open(path, "rb", buffering=0) as fh:  # one read of the whole file, no buffer layer
                data = fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # no such file: the field is missing
            return None
        if len(data) < 4 or len(data) % 4:
            raise DataServiceError(
                f"{path}: {len(data)} bytes is not a .bin (needs the start index then float32 values, 4 bytes each)"
            )
        raw = np.frombuffer(data, dtype="<f4")
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
        """Rows in [start - history trading days, end]; ``instruments=None`` means every code of the market.

        Every file is read whole into bytes (no per-file ``Path`` objects or ``stat``), then copied once into one
        preallocated column per field. Threads did not help here: the per-file work is mostly Python, under the GIL.
        """
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
        features = os.path.join(self.path, "features")
        paths = [
            os.path.join(features, code_to_dirname(code), f"{f.lower()}.{self.freq}.bin") for code in codes for f in names
        ]
        read = [self._read_bin(p) for p in paths]
        per_code = [read[k * len(names) : (k + 1) * len(names)] for k in range(len(codes))]
        seen = [any(got[j] is not None for got in per_code) for j in range(len(names))]
        missing = [f for f, ok in zip(names, seen, strict=True) if not ok]
        if missing and codes:
            raise DataServiceError(
                f"{self.path}: no '<field>.{self.freq}.bin' file for field(s) {missing} in any requested instrument; "
                f"fields available: {self.fields()}"
            )
        spans: list[tuple[int, int, int]] = []  # (code index, first, last calendar index) of instruments with rows
        for k, got in enumerate(per_code):
            present = [g for g in got if g is not None]
            if not present:
                continue
            a = max(min(s for s, _ in present), lo_i)
            b = min(max(s + len(v) - 1 for s, v in present), hi_i)
            if a <= b:
                spans.append((k, a, b))
        lengths = np.array([b - a + 1 for _, a, b in spans], dtype=np.int64)
        total = int(lengths.sum())
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        columns = {f: np.full(total, np.nan, dtype=np.float32) for f in names}
        for (k, a, b), at in zip(spans, offsets[:-1], strict=True):
            for f, got in zip(names, per_code[k], strict=True):
                if got is None:
                    continue
                s, v = got
                x0, x1 = max(s, a), min(s + len(v) - 1, b)  # overlap of the file's days with [a, b]
                if x0 <= x1:
                    columns[f][at + x0 - a : at + x1 - a + 1] = v[x0 - s : x1 - s + 1]
        if not spans:
            return pl.DataFrame(
                schema={"instrument": pl.Utf8, "datetime": pl.Datetime("us"), **{f: pl.Float32 for f in names}}
            )
        inst = np.repeat(np.array([k for k, _, _ in spans], dtype=np.uint32), lengths)
        # calendar index of each row: its position in the column shifted by its block's (first day - offset)
        cal = np.arange(total, dtype=np.int64)
        cal += np.repeat(np.array([a for _, a, _ in spans], dtype=np.int64) - offsets[:-1], lengths)
        return pl.DataFrame(
            {
                "instrument": pl.Series(codes, dtype=pl.Utf8).gather(inst),
                # int64 microseconds reinterpreted as Datetime: no per-element datetime conversion
                "datetime": pl.Series(self._calendar.view(np.int64)[cal]).cast(pl.Datetime("us")),
                **columns,
            }
        )
