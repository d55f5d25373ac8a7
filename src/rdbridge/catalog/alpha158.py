"""Alpha158 metadata for the catalog: each of the 158 with its group, window and a plain-language description."""

from __future__ import annotations

import re
from functools import cache

from rdbridge.contracts.alpha158 import ALPHA158, WINDOWS, families
from rdbridge.contracts.catalog import Alpha158Entry

VOLUME_FAMILIES = frozenset({"VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD"})
"""Rolling families computed from volume alone: the `volume` group (the others that roll are `rolling`)."""
_PRICE = frozenset({"OPEN", "HIGH", "LOW", "VWAP"})


def _group(family: str, rolling: bool) -> str:
    if not rolling:
        return "price" if family in _PRICE else "kbar"
    return "volume" if family in VOLUME_FAMILIES else "rolling"


@cache
def alpha158_entries() -> tuple[Alpha158Entry, ...]:
    """The 158 in Qlib's order (built once: the list is static)."""
    fams = {f.name: f for f in families()}
    out = []
    for f in ALPHA158:
        fam = fams[f.family]
        window: int | None = None
        text = fam.description
        if fam.rolling:
            window = int(re.fullmatch(r"[A-Z]+?(\d+)", f.name).group(1))  # type: ignore[union-attr]
            assert window in WINDOWS
            text = f"{text} Window: the last {window} trading days."
        elif fam.name in _PRICE:
            window = 0
        out.append(Alpha158Entry(name=f.name, expression=f.expression, group=_group(fam.name, fam.rolling),
                                 family=fam.name, window=window, description=text,
                                 impl_pointer=f"rd_factors_lib.alpha158:{f.name}"))
    return tuple(out)
