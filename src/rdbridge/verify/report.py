"""Writing a verification's reports: the JSON document (contracts.verify.VerifyReport), an HTML page (Jinja2 tables)
and a PNG plot of the worst instrument's two series. Every file is written atomically."""

from __future__ import annotations

import hashlib
import io
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rdbridge.atomic import write_atomic
from rdbridge.contracts.verify import VerifyReport

_TEMPLATES = Path(__file__).with_name("templates")


def safe_stem(name: str) -> str:
    """A file name for a factor name (LLM free text): readable ASCII part plus a hash, never a path."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "factor"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def _plot_png(keys: pl.DataFrame, cand: np.ndarray, ref: np.ndarray, instrument: str, title: str,
              first_date: str | None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = (keys["instrument"] == instrument).to_numpy()
    dates = keys["datetime"].to_numpy()[sel]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=90)
    try:
        ax.plot(dates, ref[sel], label="reference", lw=1.6, color="#1f77b4")
        ax.plot(dates, cand[sel], label="candidate", lw=1.0, ls="--", color="#d62728")
        if first_date:
            ax.axvline(np.datetime64(first_date), color="#555", lw=0.8, ls=":", label=f"first difference {first_date}")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, loc="best")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]))


def worst_instrument(report: VerifyReport) -> str | None:
    c = report.comparison
    if c is None:
        return None
    if c.worst_cells:
        return c.worst_cells[0].instrument if c.first_differing_instrument is None else c.first_differing_instrument
    return None


def write_reports(report: VerifyReport, out_dir: Path, keys: pl.DataFrame | None = None,
                  cand: np.ndarray | None = None, ref: np.ndarray | None = None) -> VerifyReport:
    """Write ``<stem>.json``, ``<stem>.html`` (and ``<stem>.png`` of the worst instrument when cells differ) under
    ``out_dir``; returns the report with the paths filled in."""
    stem = safe_stem(report.factor)
    json_path, html_path, png_path = (out_dir / f"{stem}.{ext}" for ext in ("json", "html", "png"))
    report = report.model_copy(update={"report_json": str(json_path), "report_html": str(html_path)})
    png_name = None
    inst = worst_instrument(report)  # None when nothing differs: no plot for a verified factor
    if keys is not None and cand is not None and ref is not None and inst is not None:
        png = _plot_png(keys, cand, ref, inst, f"{report.factor} on {inst}",
                        report.comparison.first_differing_date if report.comparison else None)
        write_atomic(png_path, png)
        png_name = png_path.name
    html = _env().get_template("report.html").render(r=report, png=png_name, plotted=inst)
    write_atomic(html_path, html.encode("utf-8"))
    write_atomic(json_path, report.model_dump_json(indent=2).encode("utf-8"))
    return report
