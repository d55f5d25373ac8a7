"""Reference results from pyqlib itself (a test/benchmark dependency only; ``src/`` never imports qlib).

``qlib_features(qlib_dir, exprs)`` writes nothing and returns pyqlib's ``D.features`` for the given expressions
as a polars frame in the panel layout (instrument, datetime, one Float32-or-Float64 column per name), so tests
can line it up row for row with ``rdbridge.engine.compute``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rdbridge.engine.data import write_qlib_dir

_INITIALISED: tuple[str, int] | None = None


def write_panel_as_qlib(panel: pl.DataFrame, qlib_dir: Path) -> Path:
    """A Qlib data dir holding ``panel``, written by our writer (its format is itself checked against pyqlib)."""
    return write_qlib_dir(panel, qlib_dir)


def init_qlib(qlib_dir: Path, kernels: int = 1) -> None:
    """``qlib.init`` once per (dir, kernels) per process, offline, with every cache off so timings are honest."""
    global _INITIALISED
    key = (str(Path(qlib_dir).resolve()), kernels)
    if _INITIALISED == key:
        return
    os.environ.setdefault("MLFLOW_TRACKING_URI", "file:" + str(Path(qlib_dir).resolve().parent / "mlruns"))
    import qlib

    qlib.init(
        provider_uri=str(Path(qlib_dir).resolve()),
        region="cn",
        kernels=kernels,
        expression_cache=None,
        dataset_cache=None,
        logging_level=logging.WARNING,
        clear_mem_cache=True,
    )
    _INITIALISED = key


def qlib_features(
    qlib_dir: Path,
    exprs: Mapping[str, str],
    *,
    start: str | None = None,
    end: str | None = None,
    kernels: int = 1,
    instruments: list[str] | None = None,
) -> pl.DataFrame:
    """pyqlib's ``D.features`` for ``exprs`` (name -> Qlib expression) on every instrument of ``all``.

    Rows: what pyqlib returns (each instrument from listing to delisting, limited to [start, end]); values are
    pyqlib's own dtype (float32 for most operators), kept as Float64 so nothing is rounded twice.
    """
    init_qlib(qlib_dir, kernels)
    from qlib.data import D

    names = list(exprs)
    fields = [exprs[n] for n in names]
    insts = D.instruments("all") if instruments is None else instruments
    df = D.features(insts, fields, start_time=start, end_time=end, freq="day")
    df.columns = names
    df = df.reset_index()
    out = pl.DataFrame(
        {
            "instrument": df["instrument"].astype(str).to_numpy(),
            "datetime": df["datetime"].to_numpy().astype("datetime64[us]"),
            **{n: df[n].to_numpy(dtype=np.float64) for n in names},
        }
    )
    return out.sort(["instrument", "datetime"])


SMALL_SHAPE = (40, 300)
"""Instruments x days of the panel every equivalence test shares: small enough to keep the suite fast."""

_SMALL: dict[str, tuple[pl.DataFrame, Path]] = {}


def small_case(tmp_path_factory) -> tuple[pl.DataFrame, Path]:  # noqa: ANN001 - pytest's TempPathFactory
    """The shared synthetic panel (late listings, early delistings, suspensions) and its Qlib dir, built once."""
    from rdbridge.engine.synthetic import make_panel

    if "case" not in _SMALL:
        panel = make_panel(*SMALL_SHAPE, seed=7, late_listing_frac=0.3, suspension_frac=0.03)
        qlib_dir = write_panel_as_qlib(panel, tmp_path_factory.mktemp("qlib_small") / "qlib_data")
        _SMALL["case"] = (panel, qlib_dir)
    return _SMALL["case"]


def small_alpha158_reference(tmp_path_factory) -> tuple[pl.DataFrame, pl.DataFrame]:  # noqa: ANN001
    """(panel, pyqlib's 158 Alpha158 columns on it), computed once per process: several test modules compare with it."""
    from rdbridge.contracts.alpha158 import alpha158_expressions

    panel, qlib_dir = small_case(tmp_path_factory)
    if "alpha158" not in _SMALL:
        _SMALL["alpha158"] = (qlib_features(qlib_dir, alpha158_expressions()), qlib_dir)
    return panel, _SMALL["alpha158"][0]


# --- expressions covering every operator ---------------------------------------------------------------------------

OPS_EXPRESSIONS: dict[str, str] = {
    # arithmetic, constants on either side, division by zero (inf), comparisons (ties: prices sit on a 0.01 tick)
    "add": "$close+$open",
    "sub": "$close-$open",
    "mul": "$close*$volume",
    "div": "$close/$open",
    "const_left": "2-$close",
    "const_right": "$close/2",
    "const_mul": "2*$close+1",
    "div_by_zero": "$close/($open-$open)",
    "pow_op": "$close**2",
    "gt": "$close>$open",
    "ge": "$close>=$open",
    "lt": "$close<$open",
    "le": "$close<=$open",
    "eq": "$close==$open",
    "ne": "$close!=$open",
    "gt_nan": "$close>Ref($close, 1)",
    # logic
    "and": "And($close>$open, $volume>Ref($volume, 1))",
    "or": "Or($close>$open, $volume>Ref($volume, 1))",
    "not": "Not($close>$open)",
    "and_op": "($close>$open) & ($high>Ref($high, 1))",
    "or_op": "($close>$open) | ($high>Ref($high, 1))",
    "if": "If($close>$open, $close, $open)",
    "if_nan_cond": "If(Ref($close, 1)>$close, 1, -1)",
    # element-wise functions
    "greater": "Greater($open, $close)",
    "less": "Less($open, $close)",
    "greater_const": "Greater($close-Ref($close, 1), 0)",
    "abs": "Abs($close-$open)",
    "sign": "Sign($close-$open)",
    "log": "Log($volume)",
    "log_nonpos": "Log($close-$open)",
    "power": "Power($close, 2)",
    "power_frac": "Power($close/$open, 0.5)",
    "power_neg_base": "Power($close-$open, 0.5)",
    "power_expr": "Power($close/Ref($close, 1), $open/$close)",
    # Ref: past, future, nested
    "ref1": "Ref($close, 1)",
    "ref5": "Ref($close, 5)",
    "ref_future": "Ref($close, -2)",
    "ref_nested": "Ref(Ref($close, 2), 3)",
    # operators reading a window result's first rows (shifts, EWM): the window kernels' columns must be missing,
    # not garbage, on the rows before each instrument's history
    "ref_of_rank": "Ref(Rank($close, 5), 1)",
    "delta_of_quantile": "Delta(Quantile($close, 10, 0.8), 2)",
    "ref_of_corr": "Ref(Corr($close, $volume, 5), 3)",
    "ref_of_slope": "Ref(Slope($close, 5), 1) + Ref(Resi($close, 5), 2) + Ref(Rsquare($close, 5), 1)",
    "ema_of_idxmax": "EMA(IdxMax($high, 5), 5)",
    "ref_of_skew_mad": "Ref(Skew($close, 5), 1) + Ref(Mad($close, 5), 1) + Ref(Med($close, 5), 1)",
    # rolling, with a short and a long window, window 1, and N=0 (Qlib's expanding window) where Qlib supports it
    "mean5": "Mean($close, 5)",
    "mean20": "Mean($close, 20)",
    "mean1": "Mean($close, 1)",
    "mean_exp": "Mean($close, 0)",
    "sum5": "Sum($close, 5)",
    "sum_exp": "Sum($volume, 0)",
    "std5": "Std($close, 5)",
    "std20": "Std($close, 20)",
    "std1": "Std($close, 1)",
    "std_exp": "Std($close, 0)",
    "var5": "Var($close, 5)",
    "var20": "Var($volume, 20)",
    "var_exp": "Var($close, 0)",
    "skew5": "Skew($close, 5)",
    "skew20": "Skew($volume, 20)",
    "skew_exp": "Skew($close, 0)",
    "kurt5": "Kurt($close, 5)",
    "kurt20": "Kurt($volume, 20)",
    "kurt_exp": "Kurt($close, 0)",
    "max5": "Max($high, 5)",
    "max_exp": "Max($close, 0)",
    "min5": "Min($low, 5)",
    "min20": "Min($low, 20)",
    "med5": "Med($close, 5)",
    "med20": "Med($close, 20)",
    "med_exp": "Med($close, 0)",
    "mad5": "Mad($close, 5)",
    "mad20": "Mad($close, 20)",
    "mad_exp": "Mad($close, 0)",
    "quantile5": "Quantile($close, 5, 0.8)",
    "quantile20": "Quantile($close, 20, 0.2)",
    "quantile_mid": "Quantile($close, 10, 0.5)",
    "quantile_exp": "Quantile($close, 0, 0.5)",
    "rank5": "Rank($close, 5)",
    "rank20": "Rank($close, 20)",
    "rank_exp": "Rank($close, 0)",
    "count20": "Count($close, 20)",
    "count_cond": "Count($close>$open, 10)",
    "delta1": "Delta($close, 1)",
    "delta5": "Delta($close, 5)",
    "delta_exp": "Delta($close, 0)",
    "slope5": "Slope($close, 5)",
    "slope20": "Slope($volume, 20)",
    "slope_exp": "Slope($close, 0)",
    "rsquare5": "Rsquare($close, 5)",
    "rsquare20": "Rsquare($close, 20)",
    "rsquare_exp": "Rsquare($close, 0)",
    "resi5": "Resi($close, 5)",
    "resi20": "Resi($close, 20)",
    "resi_exp": "Resi($close, 0)",
    "wma5": "WMA($close, 5)",
    "wma20": "WMA($close, 20)",
    "wma_exp": "WMA($close, 0)",
    "ema5": "EMA($close, 5)",
    "ema20": "EMA($close, 20)",
    "ema_alpha": "EMA($close, 0.5)",
    "ema_exp": "EMA($close, 0)",
    "idxmax5": "IdxMax($high, 5)",
    "idxmax20": "IdxMax($close, 20)",
    "idxmax_exp": "IdxMax($high, 0)",
    "idxmin5": "IdxMin($low, 5)",
    "idxmin20": "IdxMin($close, 20)",
    "corr5": "Corr($close, $volume, 5)",
    "corr20": "Corr($close, Log($volume+1), 20)",
    "corr_const": "Corr($close, $factor, 10)",
    "cov5": "Cov($close, $open, 5)",
    "cov20": "Cov($close, $volume, 20)",
    # composition: rolling of rolling, rolling of a pair, a derived field
    "nested_rolling": "Std(Mean($close, 5), 10)",
    "rank_of_cov": "Rank(Cov($close, $volume, 10), 20)",
    # Not gated: Rank(Corr($close, $volume, 10), 20). After a suspension a 10-day window can hold 2 valid days, where
    # the correlation is exactly 1; pandas' online rolling moments leave 1 - 1.6e-13 on one day and 1.0 on the next,
    # so Qlib ranks them apart while we see a tie (1 row of 10,097 differs). See docs/engine_mismatches.md.
    "ema_of_ret": "EMA($close/Ref($close, 1)-1, 10)",
    "raw_close": "$close/$factor",
    # dtype propagation: Qlib keeps element-wise results on float32 features in float32, rolling results in float64
    "f32_arith": "($close+1000000)-1000000",
    "f64_after_rolling": "(Mean($close, 1)+1000000)-1000000",
    "f32_log_spread": "(Log($volume+1)-Mean(Log($volume+1), 5))*10000",
}
"""Extra Qlib expressions: every operator at least once, including Qlib's edge cases (N=0, window 1, NaN, inf)."""


# --- comparing the engine with pyqlib --------------------------------------------------------------------------------

RTOL = 1e-5
"""Float32 precision: |ours - qlib| <= RTOL * (1 + |qlib|)."""


@dataclass
class Mismatch:
    """How one expression's result differs from pyqlib's, in the terms E1 needs to find the bug."""

    name: str
    expression: str
    rows: int
    nan_only_ours: int = 0
    nan_only_qlib: int = 0
    bad_values: int = 0
    max_abs_diff: float = 0.0
    example: str = ""
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return f"{self.name} `{self.expression}`: {self.error}"
        return (
            f"{self.name} `{self.expression}`: {self.bad_values} values off (max |diff| {self.max_abs_diff:.3g}), "
            f"NaN only in ours {self.nan_only_ours}, NaN only in qlib {self.nan_only_qlib}, of {self.rows} rows; "
            f"e.g. {self.example}"
        )


def compare_one(name: str, expression: str, ours: pl.DataFrame, ref: pl.DataFrame) -> Mismatch | None:
    """None when ``ours[name]`` equals ``ref[name]`` row for row within float32 precision, NaN for NaN."""
    keys = ["instrument", "datetime"]
    if name not in ours.columns:
        return Mismatch(name, expression, ref.height, error="missing from the engine's output")
    a_keys, b_keys = ours.select(keys), ref.select(keys)
    if not a_keys.equals(b_keys):
        extra = a_keys.join(b_keys, on=keys, how="anti").height
        lost = b_keys.join(a_keys, on=keys, how="anti").height
        return Mismatch(name, expression, ref.height, error=f"rows differ: {extra} extra, {lost} missing vs qlib")
    a = ours[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    b = ref[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    na, nb = np.isnan(a), np.isnan(b)
    both = ~na & ~nb
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))  # a == b also covers inf == inf of the same sign
        bad = both & ~((a == b) | (np.isfinite(b) & (diff <= RTOL * (1 + np.abs(b)))))
    n_bad = int(bad.sum())
    only_a, only_b = int((na & ~nb).sum()), int((nb & ~na).sum())
    if not n_bad and not only_a and not only_b:
        return None
    where = np.flatnonzero(bad | (na != nb))[0]
    row = ours.row(int(where), named=True)
    example = f"{row['instrument']} {str(row['datetime'])[:10]}: ours {float(a[where])!r}, qlib {float(b[where])!r}"
    max_diff = float(np.nanmax(np.where(bad, diff, np.nan))) if n_bad else 0.0
    return Mismatch(name, expression, ref.height, only_a, only_b, n_bad, max_diff, example)


def engine_results(
    compute: Callable[..., pl.DataFrame], panel: pl.DataFrame, exprs: Mapping[str, str], **kwargs: object
) -> tuple[pl.DataFrame | None, dict[str, str]]:
    """The engine's frame for all expressions at once; if that raises, each alone, so one bad operator names itself."""
    try:
        return compute(panel, dict(exprs), **kwargs).sort(["instrument", "datetime"]), {}
    except Exception:  # noqa: BLE001 - we report every failure, one per expression
        pass
    frames, errors = [], {}
    for name, expr in exprs.items():
        try:
            frames.append(compute(panel, {name: expr}, **kwargs).sort(["instrument", "datetime"]))
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    if not frames:
        return None, errors
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f, on=["instrument", "datetime"], how="full", coalesce=True)
    return out.sort(["instrument", "datetime"]), errors


def mismatch_report(tmp_root: Path) -> str:
    """Markdown list of every Alpha158 factor and extra expression where the engine differs from pyqlib."""
    from rdbridge.contracts.alpha158 import alpha158_expressions
    from rdbridge.engine import compute  # type: ignore[attr-defined]
    from rdbridge.engine.synthetic import make_panel

    panel = make_panel(*SMALL_SHAPE, seed=7, late_listing_frac=0.3, suspension_frac=0.03)
    qlib_dir = write_panel_as_qlib(panel, tmp_root / "qlib_data")
    lines = [
        "# Engine vs pyqlib 0.9.7: mismatches",
        "",
        f"Panel: `make_panel({SMALL_SHAPE[0]}, {SMALL_SHAPE[1]}, seed=7, late_listing_frac=0.3, "
        "suspension_frac=0.03)`; tolerance |ours - qlib| <= 1e-5 * (1 + |qlib|), NaN positions identical.",
        "Regenerate: `.venv/bin/python -m tests.engine.qlib_ref docs/engine_mismatches.md`.",
        "",
    ]
    for title, exprs in (("Alpha158", alpha158_expressions()), ("Operators", OPS_EXPRESSIONS)):
        ref = qlib_features(qlib_dir, exprs)
        ours, errors = engine_results(compute, panel, exprs)
        found = []
        for name, expr in exprs.items():
            if name in errors:
                found.append(Mismatch(name, expr, ref.height, error=errors[name]))
            elif ours is not None:
                m = compare_one(name, expr, ours, ref)
                if m:
                    found.append(m)
        lines += [f"## {title}: {len(exprs) - len(found)} of {len(exprs)} equal", ""]
        lines += [f"- {m.summary()}" for m in found] or ["- none"]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        text = mismatch_report(Path(tmp))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    print(text)
