"""The factor engine: Qlib expressions (and Python factor functions) evaluated on a long Polars panel.

``parse`` turns an expression into a typed AST, ``compute`` evaluates many expressions at once (shared
sub-expressions computed once), ``required_fields`` says which fields a request reads, ``warm_up`` loads the
compiled kernels once at a service's start-up. The names load on first use (PEP 562), so importing a light
submodule (``rdbridge.engine.ast``, the CLI) does not import numba and the kernels.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rdbridge.engine.parser import ExpressionSyntaxError, parse
    from rdbridge.engine.runner import FactorExpressionError, PanelError, compute, required_fields
    from rdbridge.engine.warmup import warm_up

_WHERE = {
    "ExpressionSyntaxError": "rdbridge.engine.parser", "parse": "rdbridge.engine.parser",
    "FactorExpressionError": "rdbridge.engine.runner", "PanelError": "rdbridge.engine.runner",
    "compute": "rdbridge.engine.runner", "required_fields": "rdbridge.engine.runner",
    "warm_up": "rdbridge.engine.warmup",
}

__all__ = [
    "ExpressionSyntaxError", "FactorExpressionError", "PanelError", "compute", "parse", "required_fields", "warm_up",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'rdbridge.engine' has no attribute {name!r}")
