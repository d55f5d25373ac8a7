"""Factors promoted from RD-Agent loops. Written only by ``rdbridge factorlib promote``: do not edit by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._registry import factor

__all__ = ["factor", "np", "pd"]
