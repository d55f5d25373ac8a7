"""ret_curve.png and dd_curve.png from Qlib's portfolio report, drawn with matplotlib's Agg backend.

Curves follow Qlib's own report graphs: cumulative sums of daily returns (strategy with and without cost, benchmark,
excess return with cost); drawdown = cumulative return minus its running maximum. 800 x 400 px, dates on x; no
timestamp and no software tag in the PNG, so the same report gives the same bytes.

Speed: building a matplotlib figure costs more than drawing it, so each process keeps one figure per chart kind and
only swaps the data, title, limits and legend before each render (every property that varies is set on every call,
so the bytes do not depend on what was drawn before).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

WIDTH_PX, HEIGHT_PX, DPI = 800, 400, 100
RET_LINES = ("strategy (without cost)", "strategy (with cost)", "benchmark", "excess return (with cost)")
DD_LINES = ("excess return (with cost)", "strategy (with cost)")
_COLORS = {"strategy (without cost)": "#1f77b4", "strategy (with cost)": "#ff7f0e", "benchmark": "#2ca02c",
           "excess return (with cost)": "#d62728"}


def _series(report: pd.DataFrame) -> dict[str, np.ndarray]:
    ret = report["return"].astype("float64").fillna(0.0).to_numpy()
    cost = report["cost"].astype("float64").fillna(0.0).to_numpy() if "cost" in report else np.zeros_like(ret)
    out = {"strategy (without cost)": np.cumsum(ret), "strategy (with cost)": np.cumsum(ret - cost)}
    if "bench" in report:
        bench = report["bench"].astype("float64").fillna(0.0).to_numpy()
        out["benchmark"] = np.cumsum(bench)
        out["excess return (with cost)"] = np.cumsum(ret - cost - bench)
    return out


class _Chart:
    """One reusable figure with a fixed set of named lines."""

    def __init__(self, names: tuple[str, ...], ylabel: str, zero_line: bool) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        self.ax = self.fig.add_subplot(1, 1, 1)
        self.ax.grid(True, alpha=0.3)
        self.ax.set_ylabel(ylabel, fontsize=9)
        self.ax.tick_params(labelsize=9)
        if zero_line:
            self.ax.axhline(0.0, color="black", linewidth=0.6)
        self.lines = {n: self.ax.plot([], [], label=n, color=_COLORS[n],
                                      linewidth=1.4 if n.startswith("excess") else 1.1)[0] for n in names}
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        self.ax.xaxis.set_major_locator(locator)
        self.ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        self.fig.subplots_adjust(left=0.11, right=0.98, top=0.92, bottom=0.09)  # fixed margins: one draw per PNG

    def render(self, title: str, x: Any, ys: dict[str, np.ndarray], legend_loc: str) -> bytes:
        for name, line in self.lines.items():
            y = ys.get(name)
            line.set_visible(y is not None)
            line.set_data(x, y if y is not None else np.zeros(len(x)))
        self.ax.set_title(title, fontsize=11)
        self.ax.relim(visible_only=True)
        self.ax.autoscale_view()
        shown = [ln for ln in self.lines.values() if ln.get_visible()]
        self.ax.legend(shown, [ln.get_label() for ln in shown], loc=legend_loc, fontsize=8, frameon=False)
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
        return buf.getvalue()


_CHARTS: dict[str, _Chart] = {}


def _chart(kind: str) -> _Chart:
    if kind not in _CHARTS:
        _CHARTS[kind] = (_Chart(RET_LINES, "cumulative return", zero_line=True) if kind == "ret"
                         else _Chart(DD_LINES, "drawdown", zero_line=True))
    return _CHARTS[kind]


def _dates(report: pd.DataFrame) -> Any:
    return report.index.to_pydatetime() if isinstance(report.index, pd.DatetimeIndex) else np.asarray(report.index)


def ret_curve_png(report: pd.DataFrame, title: str) -> bytes:
    return _chart("ret").render(f"Cumulative return: {title}", _dates(report), _series(report), "upper left")


def dd_curve_png(report: pd.DataFrame, title: str) -> bytes:
    series = _series(report)
    dd = {k: v - np.maximum.accumulate(v) for k, v in series.items() if k in DD_LINES}
    return _chart("dd").render(f"Drawdown: {title}", _dates(report), dd, "lower left")
