"""The factor engine: Qlib expressions (and Python factor functions) evaluated on a long Polars panel.

``parse`` turns an expression into a typed AST, ``compute`` evaluates many expressions at once (shared
sub-expressions computed once), ``required_fields`` says which fields a request reads, ``warm_up`` loads the
compiled kernels once at a service's start-up.
"""

from rdbridge.engine.parser import ExpressionSyntaxError, parse
from rdbridge.engine.runner import FactorExpressionError, PanelError, compute, required_fields
from rdbridge.engine.warmup import warm_up

__all__ = [
    "ExpressionSyntaxError", "FactorExpressionError", "PanelError", "compute", "parse", "required_fields", "warm_up",
]
