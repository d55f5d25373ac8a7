"""Catalog builders: factor, strategy, loop and model catalogs and the Alpha158 metadata, read from the registry.

The API serves them page by page (so they are never stale) and `rdbridge catalog export` writes them as files.
Every builder takes a SQLAlchemy Connection, a `Filters` and a `PageRequest` and returns entries plus the cursor key
of the next page (keyset pagination over a unique, stable order).
"""

from rdbridge.catalog.alpha158 import alpha158_entries
from rdbridge.catalog.factors import factor_page
from rdbridge.catalog.loops import loop_page
from rdbridge.catalog.models import model_page
from rdbridge.catalog.paging import CursorError, Filters, PageRequest, decode_cursor, encode_cursor
from rdbridge.catalog.strategies import strategy_page

__all__ = [
    "CursorError",
    "Filters",
    "PageRequest",
    "alpha158_entries",
    "decode_cursor",
    "encode_cursor",
    "factor_page",
    "loop_page",
    "model_page",
    "strategy_page",
]
