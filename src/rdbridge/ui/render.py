"""Turning library values into safe HTML pieces: highlighted source (Pygments escapes the text it formats),
metric numbers and JSON. Every other value reaches the templates as plain text and is escaped by Jinja2."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

_FORMATTER = HtmlFormatter(cssclass="hl", linenos="table")


def python_html(code: str) -> Markup:
    return Markup(highlight(code, PythonLexer(), _FORMATTER))  # noqa: S704 - Pygments escapes the code


def pygments_css() -> str:
    return _FORMATTER.get_style_defs(".hl")


def num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
