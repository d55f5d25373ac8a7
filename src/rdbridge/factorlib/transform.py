"""RD-Agent's factor script -> one pure function of rd_factors_lib's convention, by AST transformation.

The script reads ``daily_pv.h5`` and writes ``result.h5``. The function takes the frame as ``df``: the read call
becomes ``df.copy()`` (the caller's frame is never mutated), the write statement becomes ``return`` of the written
object as a Series named after the factor on the input's index. Imports, module constants and helper functions
move inside the function, so promoted factors never share a namespace. Run ``safety.check`` first.
"""

from __future__ import annotations

import ast

from rdbridge.factorlib.safety import _is_main_guard

RESERVED_PREFIX = "_rd_"
RESULT_HELPER = "_as_factor"


class TransformError(ValueError):
    """The script does not have the shape of an RD-Agent factor script; the message says what is missing."""


def _entry_body(tree: ast.Module) -> list[ast.stmt]:
    """Statements to run: the function the main guard calls (with imports/constants/helpers), or the top level."""
    guards = [n for n in tree.body if _is_main_guard(n)]
    rest = [n for n in tree.body if not _is_main_guard(n)]
    funcs = {n.name: n for n in rest if isinstance(n, ast.FunctionDef)}
    if not guards:
        return rest
    calls = [
        s.value.func.id
        for s in guards[0].body  # type: ignore[attr-defined]
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)
    ]
    if len(calls) != 1 or calls[0] not in funcs:
        raise TransformError("the __main__ guard must call exactly one function of the script")
    entry = funcs[calls[0]]
    if entry.args.args or entry.args.vararg or entry.args.kwarg or entry.args.kwonlyargs:
        raise TransformError(f"the entry function {entry.name!r} takes arguments")
    prelude = [n for n in rest if n is not entry]
    return prelude + list(entry.body)


class _Rewrite(ast.NodeTransformer):
    def __init__(self, factor_name: str) -> None:
        self.factor_name = factor_name
        self.reads = self.writes = 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "read_hdf":
            self.reads += 1
            return ast.Call(ast.Attribute(ast.Name("df", ast.Load()), "copy", ast.Load()), [], [])
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
            return None  # console output of the script: not part of the factor
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "to_hdf":
            self.writes += 1
            helper = ast.Call(
                ast.Name(RESULT_HELPER, ast.Load()),
                [self.visit(call.func.value), ast.Constant(self.factor_name), ast.Name(f"{RESERVED_PREFIX}index", ast.Load())],
                [],
            )
            return ast.Return(helper)
        return self.generic_visit(node)


def to_function(code: str, factor_name: str, func_name: str, doc: str) -> str:
    """Source of ``@factor(name) def func_name(df) -> pd.Series`` equivalent to the script ``code``."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        ident = getattr(node, "id", None) or getattr(node, "name", None) or getattr(node, "arg", None)
        if isinstance(ident, str) and ident.startswith(RESERVED_PREFIX) or ident == RESULT_HELPER:
            raise TransformError(f"the script uses the reserved name {ident!r}")
    body = [s for s in _entry_body(tree) if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    rewrite = _Rewrite(factor_name)
    body = [n for n in (rewrite.visit(s) for s in body) if n is not None]
    if rewrite.reads != 1 or rewrite.writes != 1:
        raise TransformError(
            f"expected one read of daily_pv.h5 and one to_hdf statement writing result.h5 in the entry function, "
            f"found {rewrite.reads} and {rewrite.writes}"
        )
    keep_index = ast.parse(f"{RESERVED_PREFIX}index = df.index").body[0]
    func = ast.FunctionDef(
        name=func_name,
        args=ast.arguments(posonlyargs=[], args=[ast.arg("df", ast.Attribute(ast.Name("pd", ast.Load()), "DataFrame", ast.Load()))],
                           kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=[ast.Expr(ast.Constant(doc)), keep_index, *body],
        decorator_list=[ast.Call(ast.Name("factor", ast.Load()), [ast.Constant(factor_name)], [])],
        returns=ast.Attribute(ast.Name("pd", ast.Load()), "Series", ast.Load()),
        type_params=[],
    )
    module = ast.fix_missing_locations(ast.Module([func], []))
    return ast.unparse(module) + "\n"
