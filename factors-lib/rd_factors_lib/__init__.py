"""rd_factors_lib: the factor functions RD-Agent and the trading platform share.

Every factor is ``factor_<snake_name>(df) -> pd.Series`` over RD-Agent's daily frame (MultiIndex ``datetime``,
``instrument``; columns ``$open $close $high $low $volume $vwap $factor``), aligned to ``df.index`` and named after
the factor. ``REGISTRY`` maps each factor name to its function, its group (the module) and its docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd

from . import alpha158, cross_section, generated, momentum, volume

__version__ = (Path(__file__).with_name("VERSION")).read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class FactorInfo:
    """One registered factor: the function, the module it belongs to, and its formula (the docstring)."""

    name: str
    func: Callable[[pd.DataFrame], pd.Series]
    group: str
    doc: str


def _collect(modules: tuple[ModuleType, ...]) -> dict[str, FactorInfo]:
    found: dict[str, FactorInfo] = {}
    for module in modules:
        group = module.__name__.rsplit(".", 1)[-1]
        for attr, fn in vars(module).items():
            name = getattr(fn, "factor_name", None)
            if not attr.startswith("factor_") or name is None:
                continue
            if name in found:
                raise ValueError(f"factor {name!r} defined twice: {found[name].group} and {group}")
            found[name] = FactorInfo(name=name, func=fn, group=group, doc=(fn.__doc__ or "").strip())
    return found


REGISTRY: dict[str, FactorInfo] = _collect((alpha158, momentum, volume, cross_section, generated))
"""Factor name -> FactorInfo, for every factor of the package (generated ones included)."""

__all__ = ["REGISTRY", "FactorInfo", "__version__"]
