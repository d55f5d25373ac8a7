"""ret_curve.png and dd_curve.png from Qlib's portfolio report, drawn with matplotlib's Agg backend.

Curves follow Qlib's own report graphs: cumulative sums of daily returns (strategy with and without cost, benchmark,
excess return with cost); drawdown = cumulative return minus its running maximum. 800 x 400 px, dates on x; no
timestamp and no software tag in the PNG, so the same report gives the same bytes.

Speed (a 1,000-loop run draws 2,000 charts): laying out the frame (ticks, labels, legend) is what costs in matplotlib,
and loops of one run share their backtest dates. So the y range is rounded out to a "nice" step, the frame for one
(x range, y range, curves shown) is drawn once per process and kept as a pixel buffer, and each chart restores that
buffer and draws only its curves and its title on top (matplotlib's blitting). Pixels depend only on the key and the
data, never on what was drawn before, so the bytes stay reproducible.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from rdbridge.materialize import png

WIDTH_PX, HEIGHT_PX, DPI = 800, 400, 100
TITLE_PT = 11
RET_LINES = ("strategy (without cost)", "strategy (with cost)", "benchmark", "excess return (with cost)")
DD_LINES = ("excess return (with cost)", "strategy (with cost)")
_COLORS = {"strategy (without cost)": "#1f77b4", "strategy (with cost)": "#ff7f0e", "benchmark": "#2ca02c",
           "excess return (with cost)": "#d62728"}
_STEPS = (1, 2, 2.5, 5)
_MAX_FRAMES = 64


def _column(report: pd.DataFrame, name: str) -> np.ndarray:
    a = report[name].to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isnan(a), 0.0, a)


def _series(report: pd.DataFrame) -> dict[str, np.ndarray]:
    ret = _column(report, "return")
    cost = _column(report, "cost") if "cost" in report else np.zeros_like(ret)
    out = {"strategy (without cost)": np.cumsum(ret), "strategy (with cost)": np.cumsum(ret - cost)}
    if "bench" in report:
        bench = _column(report, "bench")
        out["benchmark"] = np.cumsum(bench)
        out["excess return (with cost)"] = np.cumsum(ret - cost - bench)
    return out


def nice_limits(lo: float, hi: float, max_ticks: int = 8) -> tuple[float, float]:
    """[lo, hi] widened to multiples of a 1 / 2 / 2.5 / 5 x 10^k step with at most `max_ticks` intervals."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -1.0, 1.0
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo if hi > lo else 1e-3
    base = 10.0 ** math.floor(math.log10(span / max_ticks))
    for mult in (*_STEPS, 10, 20):
        step = base * mult
        a, b = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if (b - a) / step <= max_ticks:
            return round(a, 12), round(b, 12)
    return lo, hi


class _Chart:
    """One reusable figure with a fixed set of named curves and a cache of drawn frames."""

    def __init__(self, names: tuple[str, ...], ylabel: str) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot(1, 1, 1)
        self.ax.grid(True, alpha=0.3)
        self.ax.set_ylabel(ylabel, fontsize=9)
        self.ax.tick_params(labelsize=9)
        self.ax.axhline(0.0, color="black", linewidth=0.6)
        self.styles = {n: {"color": _COLORS[n], "linewidth": 1.4 if n.startswith("excess") else 1.1} for n in names}
        self.lines = {n: self.ax.plot([], [], **self.styles[n])[0] for n in names}
        self.proxies = {n: Line2D([], [], label=n, **self.styles[n]) for n in names}
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        self.ax.xaxis.set_major_locator(locator)
        self.ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        self.fig.subplots_adjust(left=0.11, right=0.98, top=0.91, bottom=0.12)
        self.frames: dict[tuple[Any, ...], Any] = {}
        self.legend_loc = "best"
        self.title_font, self.title_xy = _title_font(), self._title_anchor()

    def _title_anchor(self) -> tuple[float, float]:
        """Where matplotlib would put a title: centred on the axes, its bottom 2% of the axes height above them."""
        box = self.ax.get_position()
        return (box.x0 + box.x1) / 2 * WIDTH_PX, (1 - box.y1 - 0.02 * box.height) * HEIGHT_PX

    def _frame(self, key: tuple[Any, ...], xlim: tuple[float, float], ylim: tuple[float, float],
               shown: list[str]) -> Any:
        frame = self.frames.get(key)
        if frame is None:
            for line in self.lines.values():
                line.set_visible(False)
            self.ax.set_xlim(*xlim)
            self.ax.set_ylim(*ylim)
            self.ax.legend([self.proxies[n] for n in shown], shown, loc=self.legend_loc, fontsize=8, frameon=False)
            self.canvas.draw()
            frame = self.canvas.copy_from_bbox(self.fig.bbox)
            if len(self.frames) >= _MAX_FRAMES:
                self.frames.clear()
            self.frames[key] = frame
        return frame

    def render(self, title: str, x: np.ndarray, ys: dict[str, np.ndarray]) -> bytes:
        shown = [n for n in self.lines if n in ys]
        lo = min(float(np.nanmin(ys[n])) for n in shown)
        hi = max(float(np.nanmax(ys[n])) for n in shown)
        xlim = (float(x[0]) - 1.0, float(x[-1]) + 1.0)
        ylim = nice_limits(lo, hi)
        self.canvas.restore_region(self._frame((xlim, ylim, tuple(shown)), xlim, ylim, shown))
        for n in shown:
            line = self.lines[n]
            line.set_data(x, ys[n])
            line.set_visible(True)
            self.ax.draw_artist(line)
        w, h = self.canvas.get_width_height()
        image = png.rgb_image(self.canvas.buffer_rgba(), w, h)
        _draw_title(image, title, self.title_font, self.title_xy)
        return png.encode_image(image)


def _title_font() -> Any:
    """matplotlib's own default font (DejaVu Sans) at the title size, for Pillow."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties()), size=TITLE_PT * DPI / 72)


def _draw_title(image: Any, title: str, font: Any, xy: tuple[float, float]) -> None:
    """The title, unique per loop, drawn by Pillow's FreeType on the finished pixels: matplotlib's text path took
    ~3.5 ms of CPU per title, as much as the rest of the chart."""
    from PIL import ImageDraw

    ImageDraw.Draw(image).text(xy, title, font=font, fill=(0, 0, 0), anchor="md")


_CHARTS: dict[str, _Chart] = {}


def _chart(kind: str) -> _Chart:
    if kind not in _CHARTS:
        chart = _Chart(RET_LINES, "cumulative return") if kind == "ret" else _Chart(DD_LINES, "drawdown")
        chart.legend_loc = "upper left" if kind == "ret" else "lower left"
        _CHARTS[kind] = chart
    return _CHARTS[kind]


def curve_pngs(report: pd.DataFrame, title: str) -> tuple[bytes, bytes]:
    """(ret_curve.png, dd_curve.png) of one portfolio report (sorted by date); the curves are computed once."""
    import matplotlib.dates as mdates

    x = mdates.date2num(pd.DatetimeIndex(report.index).to_pydatetime())
    series = _series(report)
    dd = {k: v - np.maximum.accumulate(v) for k, v in series.items() if k in DD_LINES}
    return (_chart("ret").render(f"Cumulative return: {title}", x, series),
            _chart("dd").render(f"Drawdown: {title}", x, dd))

