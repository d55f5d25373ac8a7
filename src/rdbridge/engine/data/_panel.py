"""The panel layout every data service returns, and the shared steps to get a raw long frame into it.

Layout: ``instrument`` (Utf8), ``datetime`` (Datetime[us]), then the requested fields (no ``$``) as Float32,
sorted by (instrument, datetime), dense per instrument from its first to its last row on the source's common
calendar. A day missing inside an instrument's span becomes a row of NaN, as a suspended day is in Qlib's ``.bin``
files, so that ``Ref($close, 1)`` after a suspension sees NaN exactly as Qlib does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import polars as pl

KEYS = ("instrument", "datetime")
DateLike = str | date | datetime | np.datetime64 | None


class DataServiceError(ValueError):
    """Bad input to a data service: the message names the source, the column or file, and what to do."""


def field_name(field: str) -> str:
    """Qlib writes fields as ``$close``; panels name them ``close``. Accept both spellings."""
    return field[1:] if field.startswith("$") else field


def to_datetime64(value: DateLike, what: str) -> np.datetime64 | None:
    """Parse a start/end bound; a bad value is the caller's error, so say which bound and why."""
    if value is None:
        return None
    try:
        return np.datetime64(value, "us") if not isinstance(value, str) else np.datetime64(value).astype("datetime64[us]")
    except ValueError as exc:
        raise DataServiceError(f"{what}={value!r} is not a date (use YYYY-MM-DD)") from exc


def window_bounds(
    calendar: np.ndarray, start: DateLike, end: DateLike, history: int
) -> tuple[np.datetime64 | None, np.datetime64 | None]:
    """Turn (start, end, history) into inclusive datetime bounds on ``calendar``.

    ``history`` extra trading days before ``start`` let a caller warm up rolling windows without knowing the calendar.
    """
    if history < 0:
        raise DataServiceError(f"history={history} must be >= 0 (number of trading days before start)")
    lo = to_datetime64(start, "start")
    hi = to_datetime64(end, "end")
    if lo is not None and history and len(calendar):
        idx = int(np.searchsorted(calendar, lo, side="left"))
        lo = calendar[max(0, idx - history)]
    return lo, hi


def normalize(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Check keys, strip ``$`` from field names, cast to the panel dtypes, turn nulls into NaN, sort."""
    rename = {c: field_name(c) for c in frame.columns if c.startswith("$")}
    frame = frame.rename(rename) if rename else frame
    missing = [k for k in KEYS if k not in frame.columns]
    if missing:
        raise DataServiceError(
            f"{source}: missing column(s) {missing}; a panel needs 'instrument', 'datetime' and field columns "
            f"(found {frame.columns})"
        )
    fields = [c for c in frame.columns if c not in KEYS]
    bad = [c for c in fields if not frame.schema[c].is_numeric()]
    if bad:
        raise DataServiceError(f"{source}: field column(s) {bad} are not numeric; drop them or convert to numbers")
    dt = frame.schema["datetime"]
    if dt == pl.Utf8:
        dt_expr = pl.col("datetime").str.to_datetime(time_unit="us")
    else:
        dt_expr = pl.col("datetime").cast(pl.Datetime("us"))
    out = frame.select(
        pl.col("instrument").cast(pl.Utf8),
        dt_expr.alias("datetime"),
        *(pl.col(c).cast(pl.Float32).fill_null(float("nan")) for c in fields),
    )
    if out["datetime"].null_count() or out["instrument"].null_count():
        raise DataServiceError(f"{source}: null instrument or datetime values; every row needs both")
    dup = out.select(pl.struct(KEYS).is_duplicated().any()).item()
    if dup:
        raise DataServiceError(f"{source}: duplicate (instrument, datetime) rows; keep one row per instrument and day")
    return out.sort(list(KEYS))


def densify(frame: pl.DataFrame, calendar: np.ndarray) -> pl.DataFrame:
    """Insert NaN rows for calendar days missing inside each instrument's [first, last] span."""
    if frame.is_empty():
        return frame
    cal = pl.DataFrame({"datetime": pl.Series(calendar).cast(pl.Datetime("us"))}).with_row_index("_ci")
    spans = (
        frame.group_by("instrument")
        .agg(pl.col("datetime").min().alias("_lo"), pl.col("datetime").max().alias("_hi"))
        .join(cal.rename({"datetime": "_lo", "_ci": "_a"}), on="_lo")
        .join(cal.rename({"datetime": "_hi", "_ci": "_b"}), on="_hi")
    )
    n_rows = int((spans["_b"] - spans["_a"] + 1).sum())
    if n_rows == frame.height:
        return frame
    grid = spans.select(
        "instrument", pl.int_ranges(pl.col("_a"), pl.col("_b") + 1, dtype=pl.UInt32).alias("_ci")
    ).explode("_ci").join(cal, on="_ci").drop("_ci")
    fields = [c for c in frame.columns if c not in KEYS]
    return (
        grid.join(frame, on=list(KEYS), how="left")
        .with_columns(pl.col(fields).fill_null(float("nan")))
        .sort(list(KEYS))
    )


def select(
    frame: pl.DataFrame,
    fields: Sequence[str],
    instruments: Sequence[str] | None,
    lo: np.datetime64 | None,
    hi: np.datetime64 | None,
    source: str,
) -> pl.DataFrame:
    """Pick fields, instruments and the date window from a normalised, dense panel."""
    names = [field_name(f) for f in fields]
    unknown = [f for f in names if f not in frame.columns or f in KEYS]
    if unknown:
        have = [c for c in frame.columns if c not in KEYS]
        raise DataServiceError(f"{source}: unknown field(s) {unknown}; available fields are {have}")
    out = frame
    if instruments is not None:
        out = out.filter(pl.col("instrument").is_in(list(instruments)))
    if lo is not None:
        out = out.filter(pl.col("datetime") >= pl.lit(lo).cast(pl.Datetime("us")))
    if hi is not None:
        out = out.filter(pl.col("datetime") <= pl.lit(hi).cast(pl.Datetime("us")))
    return out.select("instrument", "datetime", *names)
