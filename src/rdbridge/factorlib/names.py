"""Factor names (any unicode the LLM wrote) -> Python function names that are stable and safe."""

from __future__ import annotations

import hashlib
import keyword
import re
import unicodedata


def snake_name(factor_name: str) -> tuple[str, bool]:
    """ASCII snake_case of ``factor_name`` and whether that was lossless (no character had to be dropped).

    ``"Vol-Adj Momentum (10D)"`` -> ``("vol_adj_momentum_10d", True)``; ``"动量_5日"`` -> ``("5", False)``.
    """
    folded = unicodedata.normalize("NFKD", factor_name)
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    lossless = all(unicodedata.combining(ch) or ch.isascii() for ch in folded)
    snake = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_only).strip("_").lower()
    return snake, lossless


def short_hash(factor_name: str) -> str:
    return hashlib.sha256(factor_name.encode("utf-8")).hexdigest()[:8]


def function_name(factor_name: str, taken: dict[str, str]) -> str:
    """``factor_<snake>`` for ``factor_name``, given ``taken`` (function name -> factor name already using it).

    An existing mapping is kept (the same name always maps the same). A new name gets ``factor_<snake>``, with
    ``_<sha256(name)[:8]>`` appended when the snake is empty, lossy (unicode), a keyword, or already used by another
    factor: deterministic, and two different names can never end up on one function.
    """
    for func, name in taken.items():
        if name == factor_name:
            return func
    snake, lossless = snake_name(factor_name)
    base = f"factor_{snake}" if snake else "factor"
    if not snake or not lossless or keyword.iskeyword(base) or base in taken:
        base = f"{base}_{short_hash(factor_name)}"
    if base in taken:  # a sha-8 collision between two names: fall back to the full digest
        base = f"factor_{hashlib.sha256(factor_name.encode('utf-8')).hexdigest()}"
    return base
