"""ret_curve.png and dd_curve.png from Qlib's portfolio report, drawn with matplotlib's Agg backend.

Curves follow Qlib's own report graphs: cumulative sums of daily returns (strategy with and without cost, benchmark,
excess return with cost); drawdown = cumulative excess return minus its running maximum. 800 x 400 px; no timestamp
and no software tag in the PNG, so the same report gives the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

WIDTH_PX, HEIGHT_PX, DPI = 800, 400, 100


def _series(report: pd.DataFrame) -> dict[str, pd.Series]:
    ret = report["return"].astype("float64").fillna(0.0)
    cost = report["cost"].astype("float64").fillna(0.0) if "cost" in report else pd.Series(0.0, index=report.index)
    bench = report["bench"].astype("float64").fillna(0.0) if "bench" in report else None
    out = {"strategy (without cost)": ret.cumsum(), "strategy (with cost)": (ret - cost).cumsum()}
    if bench is not None:
        out["benchmark"] = bench.cumsum()
        out["excess return (with cost)"] = (ret - cost - bench).cumsum()
    return out


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Any, ax: Any) -> bytes:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(labelsize=9)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.92, bottom=0.09)  # fixed margins: one draw, no tight_layout
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def ret_curve_png(report: pd.DataFrame, title: str) -> bytes:
    fig, ax = _figure(f"Cumulative return: {title}")
    for label, s in _series(report).items():
        ax.plot(s.index, s.to_numpy(), label=label, linewidth=1.4 if "excess" in label else 1.1)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("cumulative return", fontsize=9)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return _png(fig, ax)


def dd_curve_png(report: pd.DataFrame, title: str) -> bytes:
    fig, ax = _figure(f"Drawdown: {title}")
    series = _series(report)
    key = "excess return (with cost)" if "excess return (with cost)" in series else "strategy (with cost)"
    for label in (key, "strategy (with cost)") if key != "strategy (with cost)" else (key,):
        cum = series[label]
        dd = cum - np.maximum.accumulate(cum.to_numpy())
        ax.fill_between(cum.index, dd.to_numpy(), 0.0, alpha=0.35, label=label)
    ax.set_ylabel("drawdown", fontsize=9)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return _png(fig, ax)
