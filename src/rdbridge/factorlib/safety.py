"""Static safety check of LLM-written factor code, before it is ever run or promoted.

Allow-list, not deny-list, for imports; everything that reaches files, processes, the network, the interpreter's
internals or dynamic code is refused with a reason naming the line. The one ``read_hdf("daily_pv.h5")`` and the one
``to_hdf("result.h5")`` the promotion replaces are the only I/O allowed. What cannot be decided statically (endless
loops, memory bombs) is caught by the sandbox's rlimits and timeout.
"""

from __future__ import annotations

import ast

ALLOWED_MODULES = frozenset(
    {"numpy", "pandas", "math", "scipy.stats", "scipy.special", "statistics", "functools", "itertools",
     "collections", "typing", "warnings", "datetime", "operator", "re"}
)
"""Importable modules (a submodule of an allowed module is allowed too: ``numpy.linalg``)."""

FORBIDDEN_CALLS = frozenset(
    {"open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "setattr", "delattr", "input",
     "breakpoint", "help", "exit", "quit", "memoryview", "classmethod", "staticmethod", "super"}
)
IO_ATTRIBUTES = frozenset(
    {"to_hdf", "to_csv", "to_pickle", "to_parquet", "to_feather", "to_sql", "to_json", "to_excel", "to_stata",
     "to_clipboard", "to_html", "to_latex", "to_markdown", "to_xml", "to_orc", "to_gbq", "to_string", "tofile",
     "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt", "fromfile", "memmap",
     "open_memmap", "fromregex", "DataFrame.to_records", "HDFStore", "ExcelWriter", "eval", "query", "ctypeslib",
     "f2py", "testing", "system", "popen"}
)
"""Attribute names that read or write files, evaluate strings, or reach C/OS helpers (``read_*`` also refused)."""

INPUT_FILE = "daily_pv.h5"
OUTPUT_FILE = "result.h5"


def _module_allowed(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in ALLOWED_MODULES)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` exactly: the one place a dunder name is accepted (the guard is dropped)."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and len(node.test.comparators) == 1
        and isinstance(node.test.comparators[0], ast.Constant)
        and node.test.comparators[0].value == "__main__"
    )


def _first_arg_is(call: ast.Call, value: str) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Constant) and call.args[0].value == value


def check(tree: ast.Module) -> list[str]:
    """Every reason ``tree`` may not be promoted (empty: statically acceptable)."""
    reasons: list[str] = []
    reads = writes = 0
    guards = set()
    for n in tree.body:
        if _is_main_guard(n):
            guards |= {id(n.test.left), id(n.test.comparators[0])}  # type: ignore[attr-defined]

    def refuse(node: ast.AST, why: str) -> None:
        reasons.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name):
                    refuse(node, f"import of {alias.name!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_MODULES))})")
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module or not _module_allowed(node.module):
                refuse(node, f"import from {node.module!r} is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            refuse(node, f"'{type(node).__name__.lower()}' statements are not allowed")
        elif isinstance(node, ast.ClassDef):
            refuse(node, "class definitions are not allowed")
        elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom)):
            refuse(node, "async code and generators are not allowed")
        elif isinstance(node, ast.Attribute):
            if _is_dunder(node.attr):
                refuse(node, f"access to the dunder attribute {node.attr!r} is not allowed")
            elif node.attr in IO_ATTRIBUTES or node.attr.startswith("read_"):
                if node.attr == "read_hdf":
                    reads += 1
                elif node.attr == "to_hdf":
                    writes += 1
                else:
                    refuse(node, f"{node.attr!r} (file I/O or string evaluation) is not allowed")
        elif isinstance(node, ast.Name):
            if _is_dunder(node.id) and id(node) not in guards:
                refuse(node, f"the dunder name {node.id!r} is not allowed")
            elif node.id in FORBIDDEN_CALLS:
                refuse(node, f"{node.id!r} is not allowed")
        elif isinstance(node, ast.FunctionDef):
            if _is_dunder(node.name):
                refuse(node, f"defining the dunder {node.name!r} is not allowed")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            attr = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)) or _is_dunder(attr.value):
                refuse(node, "getattr with a dunder or computed attribute name is not allowed")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "read_hdf" and not _first_arg_is(node, INPUT_FILE):
                refuse(node, f"read_hdf of anything but {INPUT_FILE!r} is not allowed")
            if node.func.attr == "to_hdf" and not _first_arg_is(node, OUTPUT_FILE):
                refuse(node, f"to_hdf to anything but {OUTPUT_FILE!r} is not allowed")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_dunder(node.value.strip()) \
                and id(node) not in guards:
            refuse(node, f"the dunder string {node.value!r} is not allowed")
    if reads != 1:
        reasons.append(f"expected exactly one read_hdf({INPUT_FILE!r}), found {reads}")
    if writes != 1:
        reasons.append(f"expected exactly one to_hdf({OUTPUT_FILE!r}), found {writes}")
    return reasons
