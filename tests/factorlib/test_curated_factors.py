"""Each curated factor (momentum, volume, cross_section) equals an independent plain-Python computation: loops over
one instrument's days (or one date's instruments) with ``math`` and ``statistics``, on a small panel with late
listings and suspended days."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from rdbridge.engine.synthetic import make_panel

from .panels import rdagent_frame

NAN = float("nan")
Arrays = dict[str, list[float]]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return rdagent_frame(make_panel(8, 300, seed=11, late_listing_frac=0.3, suspension_frac=0.02))


def _series(df: pd.DataFrame) -> dict[str, Arrays]:
    """instrument -> field -> values in time order (Python floats)."""
    out: dict[str, Arrays] = {}
    for inst, g in df.groupby(level="instrument"):
        g = g.sort_index(level="datetime")
        out[inst] = {k[1:]: [float(x) for x in g[k]] for k in g.columns}
        out[inst]["dates"] = list(g.index.get_level_values("datetime"))  # type: ignore[assignment]
    return out


def _ok(*xs: float) -> bool:
    return all(not math.isnan(x) for x in xs)


def _win(x: list[float], i: int, d: int) -> list[float] | None:
    """The valid values among the last d up to i, once there are d rows of history (None if none)."""
    if i - d + 1 < 0:
        return None
    return [v for v in x[i - d + 1 : i + 1] if _ok(v)] or None


def _sd(w: list[float]) -> float:
    return statistics.stdev(w) if len(w) >= 2 else NAN


def _lag(x: list[float], i: int, n: int) -> float:
    return x[i - n] if i - n >= 0 else NAN


def _ret(c: list[float], i: int, n: int = 1) -> float:
    prev = _lag(c, i, n)
    return c[i] / prev - 1 if _ok(c[i], prev) else NAN


def _stat(fn: Callable[[list[float]], float], w: list[float] | None) -> float:
    return NAN if w is None else fn(w)


def _ema(x: list[float], span: int) -> list[float]:
    a, out, prev = 2 / (span + 1), [], NAN
    for v in x:
        if math.isnan(v):
            out.append(NAN)
            continue
        prev = v if math.isnan(prev) else (1 - a) * prev + a * v
        out.append(prev)
    return out


def _pearson(a: list[float], b: list[float]) -> float:
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa, sbb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else NAN


def _ts(fn: Callable[[Arrays, int], float]) -> Callable[[Arrays], list[float]]:
    return lambda s: [fn(s, i) for i in range(len(s["close"]))]


def _mom_12_1(s: Arrays, i: int) -> float:
    a, b = _lag(s["close"], i, 21), _lag(s["close"], i, 252)
    return a / b - 1 if _ok(a, b) else NAN


def _vol_adj(s: Arrays, i: int) -> float:
    w = _win([_ret(s["close"], j) for j in range(len(s["close"]))], i, 60)
    return _ret(s["close"], i, 60) / (_sd(w) * math.sqrt(60)) if w else NAN


def _rsi(s: Arrays, i: int) -> float:
    moves = _win([s["close"][j] - _lag(s["close"], j, 1) for j in range(len(s["close"]))], i, 14)
    if not moves:
        return NAN
    gain, loss = sum(m for m in moves if m > 0), sum(-m for m in moves if m < 0)
    return 100 * gain / (gain + loss) if gain + loss > 0 else NAN


def _slope(s: Arrays, i: int) -> float:
    if i < 19:
        return NAN
    pairs = [(k + 1, math.log(x)) for k, x in enumerate(s["close"][i - 19 : i + 1]) if _ok(x)]
    if len(pairs) < 2:
        return NAN
    t, y = [a for a, _ in pairs], [b for _, b in pairs]
    mt, my = statistics.fmean(t), statistics.fmean(y)
    return sum((a - mt) * (b - my) for a, b in zip(t, y)) / sum((a - mt) ** 2 for a in t)


def _seq_mean(vals: list[float], i: int, d: int) -> float:
    return _stat(statistics.fmean, _win(vals, i, d))


def _derived(fn: Callable[[Arrays, int], float]) -> Callable[[Arrays], list[float]]:
    """A per-day series (e.g. intraday return) as a list, for windowing."""
    return lambda s: [fn(s, j) for j in range(len(s["close"]))]


_intraday = _derived(lambda s, j: s["close"][j] / s["open"][j] - 1)
_overnight = _derived(lambda s, j: s["open"][j] / _lag(s["close"], j, 1) - 1 if _ok(_lag(s["close"], j, 1)) else NAN)
_r1 = _derived(lambda s, j: _ret(s["close"], j))
_logv = _derived(lambda s, j: math.log(s["volume"][j]) if _ok(s["volume"][j]) else NAN)


def _macd(s: Arrays) -> list[float]:
    e12, e26 = _ema(s["close"], 12), _ema(s["close"], 26)
    return [(a - b) / c if _ok(a, b, c) else NAN for a, b, c in zip(e12, e26, s["close"])]


def _mom_accel(s: Arrays) -> list[float]:
    m = [_ret(s["close"], i, 20) for i in range(len(s["close"]))]
    return [m[i] - _lag(m, i, 20) for i in range(len(m))]


MOMENTUM: dict[str, Callable[[Arrays], list[float]]] = {
    "MOM_12_1": _ts(_mom_12_1),
    "MOM_20": _ts(lambda s, i: _ret(s["close"], i, 20)),
    "MOM_60": _ts(lambda s, i: _ret(s["close"], i, 60)),
    "VOL_ADJ_MOM_60": _ts(_vol_adj),
    "REVERSAL_5": _ts(lambda s, i: -_ret(s["close"], i, 5)),
    "RSI_14": _ts(_rsi),
    "MACD_12_26": _macd,
    "PRICE_TO_HIGH_252": _ts(lambda s, i: s["close"][i] / _stat(max, _win(s["high"], i, 252))),
    "MA_CROSS_5_20": _ts(lambda s, i: _seq_mean(s["close"], i, 5) / _seq_mean(s["close"], i, 20) - 1),
    "MOM_ACCEL_20": _mom_accel,
    "INTRADAY_MOM_20": lambda s: [_seq_mean(_intraday(s), i, 20) for i in range(len(s["close"]))],
    "OVERNIGHT_MOM_20": lambda s: [_seq_mean(_overnight(s), i, 20) for i in range(len(s["close"]))],
    "TREND_SLOPE_20": _ts(_slope),
}


def _amihud(s: Arrays) -> list[float]:
    x = [abs(_ret(s["close"], j)) / (s["close"][j] * s["volume"][j]) for j in range(len(s["close"]))]
    return [1e9 * _seq_mean(x, i, 20) for i in range(len(x))]


def _surprise(s: Arrays, i: int) -> float:
    """Today's log volume against the valid ones of the 20 rows before it (from row 19 on, as its window)."""
    lv = _logv(s)
    past = [x for x in lv[max(0, i - 20) : i] if _ok(x)]
    if i < 19 or len(past) < 2 or not _ok(lv[i]):
        return NAN
    return (lv[i] - statistics.fmean(past)) / statistics.stdev(past)


def _obv(s: Arrays, i: int) -> float:
    r, v = _r1(s), s["volume"]
    if i < 19:
        return NAN
    rows = range(i - 19, i + 1)
    signed = [(1 if r[j] > 0 else -1 if r[j] < 0 else 0) * v[j] for j in rows if _ok(r[j], v[j])]
    vols = [v[j] for j in rows if _ok(v[j])]
    return sum(signed) / sum(vols) if signed and vols else NAN


def _pv_corr(s: Arrays, i: int) -> float:
    r, lv = _r1(s), _logv(s)
    pairs = [(r[j], lv[j]) for j in range(i - 19, i + 1) if _ok(r[j], lv[j])] if i >= 19 else []
    return _pearson([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) >= 2 else NAN


VOLUME: dict[str, Callable[[Arrays], list[float]]] = {
    "AMIHUD_20": _amihud,
    "TURNOVER_RATIO_5_60": _ts(lambda s, i: _seq_mean(s["volume"], i, 5) / _seq_mean(s["volume"], i, 60)),
    "TURNOVER_RATIO_1_20": _ts(lambda s, i: s["volume"][i] / _seq_mean(s["volume"], i, 20)),
    "VOLUME_SURPRISE_20": _ts(_surprise),
    "LOG_DOLLAR_VOLUME_20": lambda s: [
        math.log(m) if _ok(m) else NAN
        for m in (_seq_mean([c * v for c, v in zip(s["close"], s["volume"])], i, 20) for i in range(len(s["close"])))
    ],
    "VOLUME_CV_20": _ts(lambda s, i: _stat(_sd, _win(s["volume"], i, 20)) / _seq_mean(s["volume"], i, 20)),
    "LOG_VOLUME_STD_20": lambda s: [_stat(_sd, _win(_logv(s), i, 20)) for i in range(len(s["close"]))],
    "OBV_RATIO_20": _ts(_obv),
    "VWAP_DEV_5": lambda s: [
        _seq_mean([c / w - 1 for c, w in zip(s["close"], s["vwap"])], i, 5) for i in range(len(s["close"]))
    ],
    "VOLUME_TO_MAX_20": _ts(lambda s, i: s["volume"][i] / _stat(max, _win(s["volume"], i, 20))),
    "PV_CORR_20": _ts(_pv_corr),
}


def _frame_of(per_instrument: dict[str, list[float]], series: dict[str, Arrays]) -> dict[tuple, float]:
    return {
        (d, inst): v for inst, vals in per_instrument.items() for d, v in zip(series[inst]["dates"], vals)  # type: ignore[arg-type]
    }


def _assert_equal(out: pd.Series, expected: dict[tuple, float], name: str) -> None:
    exp = pd.Series(expected).reindex(out.index).to_numpy(dtype="float64")
    got = out.to_numpy(dtype="float64")
    assert out.name == name
    assert (np.isnan(exp) == np.isnan(got)).all(), f"{name}: NaN masks differ at {np.flatnonzero(np.isnan(exp) != np.isnan(got))[:5]}"
    ok = ~np.isnan(exp)
    assert ok.sum() > 100, f"{name}: too few values to compare ({ok.sum()})"
    np.testing.assert_allclose(got[ok], exp[ok], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", list(MOMENTUM) + list(VOLUME))
def test_time_series_factor_equals_loop(df: pd.DataFrame, name: str) -> None:
    from rd_factors_lib import REGISTRY

    series = _series(df)
    ref = MOMENTUM.get(name) or VOLUME[name]
    _assert_equal(REGISTRY[name].func(df), _frame_of({i: ref(s) for i, s in series.items()}, series), name)
    assert REGISTRY[name].group == ("momentum" if name in MOMENTUM else "volume")


def _by_date(values: dict[tuple, float]) -> dict[object, dict[str, float]]:
    out: dict[object, dict[str, float]] = {}
    for (d, inst), v in values.items():
        out.setdefault(d, {})[inst] = v
    return out


def _pct_rank(day: dict[str, float]) -> dict[str, float]:
    valid = [v for v in day.values() if _ok(v)]
    return {
        k: (sum(1 for x in valid if x < v) + (sum(1 for x in valid if x == v) + 1) / 2) / len(valid) if _ok(v) else NAN
        for k, v in day.items()
    }


def _zscore(day: dict[str, float]) -> dict[str, float]:
    valid = [v for v in day.values() if _ok(v)]
    if len(valid) < 2:
        return {k: NAN for k in day}
    m, sd = statistics.fmean(valid), statistics.stdev(valid)
    return {k: (v - m) / sd if _ok(v) else NAN for k, v in day.items()}


def _demean(day: dict[str, float]) -> dict[str, float]:
    valid = [v for v in day.values() if _ok(v)]
    m = statistics.fmean(valid) if valid else NAN
    return {k: v - m for k, v in day.items()}


def _cs(transform: Callable[[dict[str, float]], dict[str, float]], base: Callable[[Arrays], list[float]]):
    def run(series: dict[str, Arrays]) -> dict[tuple, float]:
        days = _by_date(_frame_of({i: base(s) for i, s in series.items()}, series))
        return {(d, k): v for d, day in days.items() for k, v in transform(day).items()}

    return run


def _vol20(s: Arrays) -> list[float]:
    r = _r1(s)
    return [_stat(_sd, _win(r, i, 20)) for i in range(len(r))]


CROSS: dict[str, Callable[[dict[str, Arrays]], dict[tuple, float]]] = {
    "CS_RANK_MOM_20": _cs(_pct_rank, MOMENTUM["MOM_20"]),
    "CS_ZSCORE_MOM_20": _cs(_zscore, MOMENTUM["MOM_20"]),
    "CS_WINSOR_ZSCORE_MOM_20": _cs(lambda d: {k: min(3.0, max(-3.0, v)) if _ok(v) else NAN for k, v in _zscore(d).items()}, MOMENTUM["MOM_20"]),
    "CS_DEMEANED_RET_1": _cs(_demean, _r1),
    "CS_RANK_VOLATILITY_20": _cs(_pct_rank, _vol20),
    "CS_RANK_DOLLAR_VOLUME_20": _cs(_pct_rank, VOLUME["LOG_DOLLAR_VOLUME_20"]),
    "CS_RANK_AMIHUD_20": _cs(_pct_rank, VOLUME["AMIHUD_20"]),
    "CS_ZSCORE_TURNOVER_5_60": _cs(_zscore, VOLUME["TURNOVER_RATIO_5_60"]),
    "CS_ZSCORE_REVERSAL_5": _cs(_zscore, MOMENTUM["REVERSAL_5"]),
    "CS_RANK_INTRADAY_RET": _cs(_pct_rank, _intraday),
    "CS_RANK_PRICE_LEVEL": _cs(_pct_rank, lambda s: [c / f for c, f in zip(s["close"], s["factor"])]),
    "CS_QUINTILE_MOM_12_1": _cs(
        lambda d: {k: math.ceil(5 * v) if _ok(v) else NAN for k, v in _pct_rank(d).items()}, MOMENTUM["MOM_12_1"]
    ),
}


@pytest.mark.parametrize("name", list(CROSS))
def test_cross_section_factor_equals_loop(df: pd.DataFrame, name: str) -> None:
    from rd_factors_lib import REGISTRY

    _assert_equal(REGISTRY[name].func(df), CROSS[name](_series(df)), name)
    assert REGISTRY[name].group == "cross_section"


def test_each_curated_module_has_ten_tested_factors() -> None:
    from rd_factors_lib import REGISTRY

    for group, tested in (("momentum", MOMENTUM), ("volume", VOLUME), ("cross_section", CROSS)):
        names = {n for n, i in REGISTRY.items() if i.group == group}
        assert len(names) >= 10 and names == set(tested), group
        assert all(REGISTRY[n].doc.startswith(f"{n} = ") for n in names)
