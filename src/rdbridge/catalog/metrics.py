"""Which of a loop's backtest metrics the catalogs show as its key metrics."""

from __future__ import annotations

from typing import Any

KEY_METRIC_SUFFIXES: tuple[str, ...] = (
    "IC", "ICIR", "Rank IC", "Rank ICIR", "annualized_return", "information_ratio", "max_drawdown",
)
"""Qlib's signal metrics and the excess-return (with cost) risk figures, matched on the metric name's last part."""


def key_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The key metrics present in `metrics` (all of them when none of the known names occurs)."""
    if not metrics:
        return {}
    picked = {k: v for k, v in metrics.items()
              if k.rsplit(".", 1)[-1] in KEY_METRIC_SUFFIXES and ("with_cost" in k or "." not in k)}
    return picked or dict(metrics)
