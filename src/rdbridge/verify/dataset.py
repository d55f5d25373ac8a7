"""The standard test set: a seeded panel shaped like A-share daily data, regenerated bit for bit from its seed and
checked against the sha256 recorded here (so a drifting generator is an error, never a silent new data set)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from rdbridge.contracts.verify import DatasetInfo
from rdbridge.engine.synthetic import FIELDS, make_panel


class DatasetError(ValueError):
    """The data set is unknown, unreadable, or does not hash to its recorded sha256."""


@dataclass(frozen=True)
class StandardSet:
    name: str
    seed: int
    instruments: int
    days: int
    sha256: str


STANDARD_SETS: dict[str, StandardSet] = {
    "std-v1": StandardSet("std-v1", seed=20261202, instruments=48, days=260,
                          sha256="1d1798c0e7e94f9603b566f4d51b62ff2bd6a036ba95e97c80030969ce208e30"),
}
DEFAULT_SET = "std-v1"


def _limit_moves(panel: pl.DataFrame, seed: int) -> pl.DataFrame:
    """About 1.5% of trading rows become one-price limit days (open = high = low = close, +-10% on the previous
    close): zero ranges and capped returns, where divisions by (high - low) and ties in ranks go wrong."""
    rng = np.random.default_rng(seed + 1)
    close = panel["close"].to_numpy().astype(np.float64)
    inst = panel["instrument"].to_numpy()
    prev = np.r_[np.nan, close[:-1]]
    prev[np.r_[True, inst[1:] != inst[:-1]]] = np.nan
    hit = (rng.random(panel.height) < 0.015) & np.isfinite(prev) & np.isfinite(close)
    sign = np.where(rng.random(panel.height) < 0.5, 1.1, 0.9)
    limit = np.round(prev * sign, 2)
    cols = {}
    for f in ("open", "high", "low", "close", "vwap"):
        v = panel[f].to_numpy().astype(np.float64)
        cols[f] = np.where(hit, limit, v).astype(np.float32)
    vol = panel["volume"].to_numpy().astype(np.float64)
    cols["volume"] = np.where(hit, np.round(vol * 0.2), vol).astype(np.float32)
    return panel.with_columns(*(pl.Series(k, v) for k, v in cols.items()))


def _delistings(panel: pl.DataFrame, seed: int, count: int = 5) -> pl.DataFrame:
    """``count`` more instruments delist part-way (rows after a trading day in the middle of the calendar dropped),
    so windows near the end of a life and instruments missing from the last dates are exercised."""
    rng = np.random.default_rng(seed + 2)
    names = sorted(panel["instrument"].unique().to_list())
    dates = np.sort(panel["datetime"].unique().to_numpy())
    picked = rng.choice(len(names), size=min(count, len(names)), replace=False)
    cuts = {names[i]: dates[int(rng.integers(len(dates) // 3, 2 * len(dates) // 3))] for i in picked}
    keep = []
    for inst, part in panel.group_by("instrument", maintain_order=True):
        inst = inst[0]
        if inst in cuts:
            part = part.filter(pl.col("datetime") <= cuts[inst])
            last_trading = part.filter(pl.col("close").is_not_nan())["datetime"].max()
            part = part.filter(pl.col("datetime") <= last_trading)
        keep.append(part)
    return pl.concat(keep)


def generate(name: str = DEFAULT_SET) -> pl.DataFrame:
    """The named standard panel (instrument, datetime, open..factor as Float32), from its seed.

    Built on the engine's synthetic generator (late listings, delistings (plus five more here), suspended rows of NaN, adjustment-factor
    jumps applied to prices, 0.01 ticks) plus limit-up / limit-down days.
    """
    spec = STANDARD_SETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown standard data set {name!r} (known: {', '.join(STANDARD_SETS)})")
    panel = make_panel(spec.instruments, spec.days, seed=spec.seed, late_listing_frac=0.3, suspension_frac=0.03)
    panel = _delistings(panel, spec.seed)
    return _limit_moves(panel, spec.seed).sort(["instrument", "datetime"])


def panel_sha256(panel: pl.DataFrame) -> str:
    """A hash of the panel's content independent of file formats: keys and float32 fields in (instrument, datetime)
    order."""
    p = panel.sort(["instrument", "datetime"])
    h = hashlib.sha256()
    h.update("\n".join(p["instrument"].cast(pl.Utf8).to_list()).encode())
    h.update(p["datetime"].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy().tobytes())
    for f in FIELDS:
        if f in p.columns:
            h.update(f.encode())
            h.update(p[f].cast(pl.Float32).to_numpy().tobytes())
    return h.hexdigest()


def standard(name: str = DEFAULT_SET) -> tuple[pl.DataFrame, DatasetInfo]:
    """The standard panel and its description; raises when it does not hash to the recorded sha256."""
    panel = generate(name)
    sha = panel_sha256(panel)
    expected = STANDARD_SETS[name].sha256
    if sha != expected:
        raise DatasetError(f"standard data set {name!r} regenerated with sha256 {sha}, recorded {expected}: "
                           "the generator changed; a changed set needs a new name")
    return panel, _info(panel, name, sha, f"standard:{name}")


def _info(panel: pl.DataFrame, name: str, sha: str, source: str) -> DatasetInfo:
    return DatasetInfo(name=name, sha256=sha, rows=panel.height, instruments=panel["instrument"].n_unique(),
                       dates=panel["datetime"].n_unique(), source=source)


def user_data(path: str) -> tuple[pl.DataFrame, DatasetInfo]:
    """The user's own data through the engine's DataService protocol (Qlib dir or Parquet panel), all fields."""
    from pathlib import Path

    from rdbridge.engine.data import open_data_service

    try:
        svc = open_data_service(path)
        fields = [f for f in FIELDS if f in {x.lstrip("$") for x in svc.fields()}]
        panel = svc.load(fields, None, None, None)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--data {path}: {exc}") from exc
    panel = panel.sort(["instrument", "datetime"])
    return panel, _info(panel, Path(path).name, panel_sha256(panel), f"data:{path}")
