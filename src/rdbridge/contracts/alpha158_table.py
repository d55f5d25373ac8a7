"""Alpha158's definitions as plain data: Qlib's 158 factor names and expressions, in Qlib's order.

Kept apart from the pydantic contracts (``alpha158.py`` builds ``FactorDef`` / ``Family`` from these rows) so that
``rdbridge engine compute --alpha158`` gets its expressions without importing pydantic (~40 ms of a ~1.5 s job).
"""

from __future__ import annotations

WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)
"""The rolling windows (trading days) of every rolling family, in Qlib's order."""


_EPS = "1e-12"
_RET = "$close-Ref($close, 1)"
_VCHG = "$volume-Ref($volume, 1)"

# Candlestick (K-bar) shape of one day, scaled by the open or by the day's range.
_KBAR: tuple[tuple[str, str, str], ...] = (
    ("KMID", "Body: (close - open) / open.", "($close-$open)/$open"),
    ("KLEN", "Range: (high - low) / open.", "($high-$low)/$open"),
    ("KMID2", "Body as a share of the day's range.", f"($close-$open)/($high-$low+{_EPS})"),
    ("KUP", "Upper shadow / open.", "($high-Greater($open, $close))/$open"),
    ("KUP2", "Upper shadow as a share of the range.", f"($high-Greater($open, $close))/($high-$low+{_EPS})"),
    ("KLOW", "Lower shadow / open.", "(Less($open, $close)-$low)/$open"),
    ("KLOW2", "Lower shadow as a share of the range.", f"(Less($open, $close)-$low)/($high-$low+{_EPS})"),
    ("KSFT", "Where the close sits in the bar: (2 close - high - low) / open.", "(2*$close-$high-$low)/$open"),
    ("KSFT2", "Close position as a share of the range.", f"(2*$close-$high-$low)/($high-$low+{_EPS})"),
)

# Today's price fields relative to the close (Qlib's default: window 0 only).
_PRICE_FIELDS: tuple[str, ...] = ("OPEN", "HIGH", "LOW", "VWAP")


def _sum_ratio(num: str, base: str, d: str = "{d}") -> str:
    """Sum of a one-sided move over the sum of absolute moves: an RSI-like share in [0, 1]."""
    return f"Sum({num}, {d})/(Sum(Abs({base}), {d})+{_EPS})"


_UP = f"Greater({_RET}, 0)"
_DOWN = "Greater(Ref($close, 1)-$close, 0)"
_VUP = f"Greater({_VCHG}, 0)"
_VDOWN = "Greater(Ref($volume, 1)-$volume, 0)"
_ABSRET_VOL = "Abs($close/Ref($close, 1)-1)*$volume"

# Rolling families, in Qlib's order; descriptions say what the number means to a quant.
_ROLLING: tuple[tuple[str, str, str], ...] = (
    ("ROC", "Price d days ago over today's close (rate of change, inverted).", "Ref($close, {d})/$close"),
    ("MA", "Moving average of close over close.", "Mean($close, {d})/$close"),
    ("STD", "Standard deviation of close over close.", "Std($close, {d})/$close"),
    ("BETA", "Slope of a linear fit of close on time, over close: the trend.", "Slope($close, {d})/$close"),
    ("RSQR", "R-squared of that linear fit: how linear the trend is.", "Rsquare($close, {d})"),
    ("RESI", "Residual of today's close from the linear fit, over close.", "Resi($close, {d})/$close"),
    ("MAX", "Highest high over close.", "Max($high, {d})/$close"),
    ("MIN", "Lowest low over close.", "Min($low, {d})/$close"),
    ("QTLU", "80% quantile of close over close.", "Quantile($close, {d}, 0.8)/$close"),
    ("QTLD", "20% quantile of close over close.", "Quantile($close, {d}, 0.2)/$close"),
    ("RANK", "Percentile of today's close within the window.", "Rank($close, {d})"),
    ("RSV", "Close's position between the window's lowest low and highest high (stochastic %K).",
     f"($close-Min($low, {{d}}))/(Max($high, {{d}})-Min($low, {{d}})+{_EPS})"),
    ("IMAX", "Days since the window's highest high, over d (Aroon up).", "IdxMax($high, {d})/{d}"),
    ("IMIN", "Days since the window's lowest low, over d (Aroon down).", "IdxMin($low, {d})/{d}"),
    ("IMXD", "Gap between the high's and the low's position, over d.", "(IdxMax($high, {d})-IdxMin($low, {d}))/{d}"),
    ("CORR", "Correlation of close and log volume.", "Corr($close, Log($volume+1), {d})"),
    ("CORD", "Correlation of price change ratio and log volume change ratio.",
     "Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), {d})"),
    ("CNTP", "Share of up days.", "Mean($close>Ref($close, 1), {d})"),
    ("CNTN", "Share of down days.", "Mean($close<Ref($close, 1), {d})"),
    ("CNTD", "Share of up days minus share of down days.",
     "Mean($close>Ref($close, 1), {d})-Mean($close<Ref($close, 1), {d})"),
    ("SUMP", "Total gain over total absolute change (RSI-like).", _sum_ratio(_UP, _RET)),
    ("SUMN", "Total loss over total absolute change.", _sum_ratio(_DOWN, _RET)),
    ("SUMD", "Gain minus loss over total absolute change.",
     f"(Sum({_UP}, {{d}})-Sum({_DOWN}, {{d}}))/(Sum(Abs({_RET}), {{d}})+{_EPS})"),
    ("VMA", "Moving average of volume over today's volume.", f"Mean($volume, {{d}})/($volume+{_EPS})"),
    ("VSTD", "Standard deviation of volume over today's volume.", f"Std($volume, {{d}})/($volume+{_EPS})"),
    ("WVMA", "Volatility of volume-weighted absolute returns (std over mean).",
     f"Std({_ABSRET_VOL}, {{d}})/(Mean({_ABSRET_VOL}, {{d}})+{_EPS})"),
    ("VSUMP", "Total volume increase over total absolute volume change.", _sum_ratio(_VUP, _VCHG)),
    ("VSUMN", "Total volume decrease over total absolute volume change.", _sum_ratio(_VDOWN, _VCHG)),
    ("VSUMD", "Volume increase minus decrease over total absolute change.",
     f"(Sum({_VUP}, {{d}})-Sum({_VDOWN}, {{d}}))/(Sum(Abs({_VCHG}), {{d}})+{_EPS})"),
)




def family_rows() -> list[tuple[str, str, str, bool]]:
    """(name, description, template, rolling) of every family: the 9 K-bar shapes, the 4 price ratios, then the 29
    rolling families (``{d}`` in a rolling template is the window)."""
    rows = [(n, desc, t, False) for n, desc, t in _KBAR]
    rows += [(f, f"{f.lower()} price of today over close.", f"${f.lower()}/$close", False) for f in _PRICE_FIELDS]
    rows += [(n, desc, t, True) for n, desc, t in _ROLLING]
    return rows


def factor_rows() -> list[tuple[str, str, str]]:
    """(name, expression, family) of the 158 factors in Qlib's order (``Alpha158DL.get_feature_config()`` with its
    default config)."""
    out: list[tuple[str, str, str]] = []
    for name, _desc, template, rolling in family_rows():
        if rolling:
            out += [(f"{name}{d}", template.format(d=d), name) for d in WINDOWS]
        elif name in _PRICE_FIELDS:
            out.append((f"{name}0", template, name))
        else:
            out.append((name, template, name))
    return out


def alpha158_expressions() -> dict[str, str]:
    """name -> Qlib expression, in Qlib's order: the input ``rdbridge.engine.compute`` takes."""
    return {name: expr for name, expr, _family in factor_rows()}
