"""The numbers in factor_perf.json and the HDF5 reading behind them.

- `hdf.read_panel` reads pandas' default layout straight from its arrays; every layout (that one and others that go
  through `pd.read_hdf`) must give the rows `pd.read_hdf` gives.
- `factor_stats` against a plain pandas reference (groupby per date, written independently here), on a panel with
  ties, missing values, duplicated rows and instruments that come and go.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdbridge.materialize import factor_stats, hdf

REPO = Path(__file__).resolve().parents[2]


def _panel(n_days: int = 40, n_inst: int = 12, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2023-01-02", periods=n_days)
    inst = [f"SH60{i:04d}" for i in range(n_inst)]
    idx = pd.MultiIndex.from_product([days, inst], names=["datetime", "instrument"])
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n_inst)), axis=0)).ravel()
    return pd.DataFrame({"$open": close * 0.99, "$close": close, "$volume": rng.integers(1, 1000, len(idx))},
                        index=idx)


def _factor(panel: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    v = np.round(rng.normal(0, 1, len(panel)), 1)  # rounded: ties within a date
    v[rng.random(len(panel)) < 0.1] = np.nan
    v[rng.random(len(panel)) < 0.02] = np.inf
    out = pd.DataFrame({"alpha_x": v}, index=panel.index)
    out = out[rng.random(len(out)) > 0.1]  # instruments missing on some dates
    return pd.concat([out, out.iloc[:5] * 2])  # duplicated rows: the last one counts


LAYOUTS = {
    "default frame": lambda df, p: df.to_hdf(p, key="data"),
    "levels (instrument, datetime)": lambda df, p: df.swaplevel().to_hdf(p, key="data"),
    "two blocks (float and int)": lambda df, p: df.assign(n=np.arange(len(df))).to_hdf(p, key="data"),
    "microsecond dates": lambda df, p: df.set_axis(
        df.index.set_levels(df.index.levels[0].as_unit("us"), level=0)).to_hdf(p, key="data"),
    "series": lambda df, p: df.iloc[:, 0].to_hdf(p, key="data"),
    "table format": lambda df, p: df.to_hdf(p, key="data", format="table"),
    "compressed": lambda df, p: df.to_hdf(p, key="data", complevel=5, complib="zlib"),
    "other key": lambda df, p: df.to_hdf(p, key="factor"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_read_panel_gives_the_rows_pandas_gives(layout: str, tmp_path: Path) -> None:
    df = _factor(_panel())
    path = tmp_path / "result.h5"
    LAYOUTS[layout](df, path)
    got = hdf.read_panel(path, "factor result")
    ref = pd.read_hdf(path)
    ref = ref.to_frame() if isinstance(ref, pd.Series) else ref
    ref = ref.reorder_levels(["datetime", "instrument"])
    assert got.labels == list(ref.columns)
    assert np.array_equal(got.datetime, ref.index.get_level_values("datetime").as_unit("ns").to_numpy())
    assert list(got.instrument) == list(ref.index.get_level_values("instrument"))
    for i, label in enumerate(got.labels):
        assert np.array_equal(got.numeric(i), ref[label].to_numpy(dtype="float64"), equal_nan=True), label


def test_fast_path_covers_what_pandas_writes_by_default(tmp_path: Path) -> None:
    """The layout RD-Agent's `result.to_hdf("result.h5", key="data")` writes is read without pd.read_hdf."""
    df = _factor(_panel())
    df.to_hdf(tmp_path / "a.h5", key="data")
    df.assign(n=1).to_hdf(tmp_path / "b.h5", key="data")
    df.iloc[:, 0].to_hdf(tmp_path / "c.h5", key="data")
    assert hdf._fast_panel(tmp_path / "a.h5") is not None and hdf._fast_panel(tmp_path / "b.h5") is not None
    assert hdf._fast_panel(tmp_path / "c.h5") is None, "a Series goes through pandas"


def test_odd_index_values_go_through_pandas(tmp_path: Path) -> None:
    df = _factor(_panel())
    text_dates = df.set_axis(df.index.set_levels(df.index.levels[0].strftime("%Y-%m-%d"), level=0))
    text_dates.to_hdf(tmp_path / "text.h5", key="data")
    assert hdf._fast_panel(tmp_path / "text.h5") is None, "dates written as text: pandas parses them"
    got = hdf.read_panel(tmp_path / "text.h5", "factor result")
    assert np.array_equal(got.datetime, df.index.get_level_values("datetime").as_unit("ns").to_numpy())
    named = df.set_axis(df.index.set_levels(["nan", *df.index.levels[1][1:]], level=1))
    named.to_hdf(tmp_path / "nan.h5", key="data")
    assert hdf._fast_panel(tmp_path / "nan.h5") is None, "pandas reads the string 'nan' back as NaN"


def test_read_panel_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "result.h5"
    bad.write_bytes(b"not hdf5" * 100)
    with pytest.raises(hdf.LoopInputError, match="result.h5"):
        hdf.read_panel(bad, "factor result")
    flat = tmp_path / "flat" / "result.h5"
    flat.parent.mkdir()
    pd.DataFrame({"x": [1.0, 2.0]}).to_hdf(flat, key="data")
    with pytest.raises(hdf.LoopInputError, match=r"result.h5.*\(datetime, instrument\)"):
        hdf.read_panel(flat, "factor result")
    with pytest.raises(hdf.LoopInputError, match="missing"):
        hdf.read_panel(tmp_path / "nothing.h5", "factor result")


# ------------------------------------------------------------------------------------------------ the statistics


def _stats_ref(values: pd.Series, close: pd.Series, q: int = 5) -> dict[str, object]:
    """Alphalens-style statistics with plain pandas, one group per date (the reference, not the implementation)."""
    f = values[~values.index.duplicated(keep="last")]
    n_rows = len(f)
    f = f.where(np.isfinite(f)).dropna().sort_index()
    c = close.sort_index().unstack("instrument")
    y = (c.shift(-2) / c.shift(-1) - 1).stack().rename("y")
    y = y[np.isfinite(y)]
    def bucket(frame: pd.DataFrame) -> pd.Series:  # exact: the k-th of n is in quantile ceil(k * q / n)
        by_day = frame.groupby(level="datetime")["f"]
        return np.clip(np.ceil(by_day.rank(method="average") * q / by_day.transform("count")), 1, q).astype(int)

    d = f.rename("f").to_frame()
    d["r"] = d.groupby(level="datetime")["f"].rank(method="average", pct=True)
    d["q"] = bucket(d)
    prev = d.groupby(level="instrument")[["r", "q"]].shift(1)
    d["r_prev"], d["was_top"] = prev["r"], (prev["q"] == q).where(prev["q"].notna())
    ac = d.dropna(subset=["r_prev"]).groupby(level="datetime").apply(
        lambda g: g["r"].corr(g["r_prev"]) if len(g) >= 3 else np.nan).dropna()
    top = d[(d["q"] == q) & d["was_top"].notna()]
    churn = top.groupby(level="datetime").apply(lambda g: (1 - g["was_top"].astype(float)).mean())
    j = d[["f"]].join(y, how="inner")
    per_day = j.groupby(level="datetime")
    ic = per_day.apply(lambda g: g["f"].corr(g["y"]) if len(g) >= 3 else np.nan).dropna()
    ric = per_day.apply(lambda g: g["f"].corr(g["y"], method="spearman") if len(g) >= 3 else np.nan).dropna()
    j["q"] = bucket(j)
    qret = j.groupby([j.index.get_level_values("datetime"), "q"])["y"].mean().groupby(level="q").mean()
    return {"n_rows": n_rows, "coverage": len(f) / n_rows, "ic_mean": ic.mean(), "ic_std": ic.std(),
            "ic_n": len(ic), "ric_mean": ric.mean(), "ric_std": ric.std(), "autocorrelation": ac.mean(),
            "turnover": churn.mean(), "quantiles": [qret.get(k, np.nan) for k in range(1, q + 1)]}


def test_quantile_boundaries_are_exact() -> None:
    """Ten values on one date fall two per quintile (6 / 10 * 5 is 3.0000000000000004 in floating point)."""
    days = np.repeat(np.datetime64("2024-01-02", "ns"), 10)
    inst = np.array([f"I{i}" for i in range(10)], dtype=object)
    got = (factor_stats._frame(days, inst, np.arange(10.0), "f")
           .with_columns(factor_stats._bucket("f", 5).alias("q"))["q"].to_list())
    assert got == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_factor_stats_match_a_pandas_reference() -> None:
    panel = _panel()
    fac = _factor(panel)["alpha_x"]
    fwd = factor_stats.forward_returns(panel.index.get_level_values("datetime").as_unit("ns").to_numpy(),
                                       panel.index.get_level_values("instrument").to_numpy(dtype=object),
                                       panel["$close"].to_numpy())
    got = factor_stats.factor_stats("alpha_x", "fid", fac.index.get_level_values("datetime").as_unit("ns").to_numpy(),
                                    fac.index.get_level_values("instrument").to_numpy(dtype=object),
                                    fac.to_numpy(), fwd)
    ref = _stats_ref(fac, panel["$close"])
    assert got.status == "ok" and got.n_rows == ref["n_rows"] and got.coverage == pytest.approx(ref["coverage"])
    assert got.n_dates == 40 and got.n_instruments == 12
    assert got.ic is not None and got.rank_ic is not None
    assert got.ic.n_days == ref["ic_n"] and got.ic.mean == pytest.approx(ref["ic_mean"], rel=1e-9)
    assert got.ic.std == pytest.approx(ref["ic_std"], rel=1e-9)
    assert got.ic.t_stat == pytest.approx(ref["ic_mean"] / ref["ic_std"] * math.sqrt(ref["ic_n"]), rel=1e-9)
    assert got.rank_ic.mean == pytest.approx(ref["ric_mean"], rel=1e-9)
    assert got.rank_ic.std == pytest.approx(ref["ric_std"], rel=1e-9)
    assert got.autocorrelation == pytest.approx(ref["autocorrelation"], rel=1e-9)
    assert got.turnover == pytest.approx(ref["turnover"], rel=1e-9)
    assert got.quantile_returns == pytest.approx(ref["quantiles"], rel=1e-9)
    assert got.top_minus_bottom == pytest.approx(ref["quantiles"][-1] - ref["quantiles"][0], rel=1e-9)
    alone = factor_stats.factor_stats("alpha_x", "fid", fac.index.get_level_values("datetime").as_unit("ns").to_numpy(),
                                      fac.index.get_level_values("instrument").to_numpy(dtype=object), fac.to_numpy(),
                                      None)
    assert alone.status == "no_forward_returns" and alone.ic is None and alone.turnover == got.turnover


_DUMP = """
import sys
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
from test_materialize_stats import _factor, _panel
from rdbridge.materialize import factor_stats
p = _panel(400, 30); f = _factor(p)["alpha_x"]  # 12,000 rows: large enough for Polars to split work
dt = lambda x: x.index.get_level_values("datetime").as_unit("ns").to_numpy()
ins = lambda x: x.index.get_level_values("instrument").to_numpy(dtype=object)
fwd = factor_stats.forward_returns(dt(p), ins(p), p["$close"].to_numpy())
print(factor_stats.factor_stats("a", None, dt(f), ins(f), f.to_numpy(), fwd).model_dump_json())
"""


def test_factor_stats_bytes_do_not_depend_on_the_thread_count() -> None:
    """The same panel gives the same JSON whatever Polars' thread pool size (i.e. on any machine)."""
    outs = set()
    for n in ("1", "2", "8"):
        env = {**os.environ, "POLARS_MAX_THREADS": n}
        run = subprocess.run([sys.executable, "-c", _DUMP, str(Path(__file__).parent)], env=env, check=True,
                             capture_output=True, text=True)
        outs.add(run.stdout)
    assert len(outs) == 1, outs
