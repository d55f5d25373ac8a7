"""Alpha158: Qlib's 158 standard daily price/volume factors, as names and Qlib expressions in Qlib's order.

Built here from the documented definitions (candlestick shape, price ratios, and 29 rolling families over 5 windows)
so the engine, the verifier and the UI share one list without importing qlib. A test checks the result against
pyqlib's ``Alpha158DL.get_feature_config()`` default config, string for string.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rdbridge.contracts.alpha158_table import WINDOWS, alpha158_expressions, factor_rows, family_rows

__all__ = ["ALPHA158", "WINDOWS", "FactorDef", "Family", "alpha158_expressions", "families"]


class FactorDef(BaseModel):
    """One Alpha158 factor: its Qlib name, its Qlib expression and the family it belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    expression: str
    family: str


class Family(BaseModel):
    """A group of factors sharing one formula; rolling families have one member per window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    template: str
    """The expression; ``{d}`` is the window for rolling families."""
    rolling: bool


def families() -> list[Family]:
    """Every family: the 9 K-bar shapes, the 4 price ratios, then the 29 rolling families."""
    return [Family(name=n, description=d, template=t, rolling=r) for n, d, t, r in family_rows()]


ALPHA158: tuple[FactorDef, ...] = tuple(FactorDef(name=n, expression=e, family=f) for n, e, f in factor_rows())
"""The 158 factors in Qlib's order (``Alpha158DL.get_feature_config()`` with its default config)."""
