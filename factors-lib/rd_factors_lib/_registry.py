"""The one decorator every factor module uses, so ``REGISTRY`` can be built from the modules without a hand list."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pandas as pd

F = TypeVar("F", bound=Callable[[pd.DataFrame], pd.Series])


def factor(name: str) -> Callable[[F], F]:
    """Mark ``fn`` as the factor ``name`` (the name its result Series carries; may hold any unicode)."""

    def mark(fn: F) -> F:
        fn.factor_name = name  # type: ignore[attr-defined]
        return fn

    return mark
