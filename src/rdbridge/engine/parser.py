"""Parser for Qlib's expression language into the typed AST of ``ast.py``.

Qlib itself rewrites ``$close`` to ``Feature("close")`` and ``Mean(`` to ``Operators.Mean(`` and calls Python's
``eval``; so the grammar here is Python's expression grammar restricted to what Qlib expressions use, with Python's
precedence (loosest first): comparisons, ``|``, ``&``, ``+ -``, ``* /``, unary minus, ``**``. Errors carry the
1-based column of the offending token and a caret line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rdbridge.engine.ast import Call, Const, Field, Node
from rdbridge.engine.ops import OPERATORS, UNSUPPORTED, is_int_like


class ExpressionSyntaxError(ValueError):
    """A Qlib expression that cannot be parsed; ``column`` is 1-based, the message ends with a caret line."""

    def __init__(self, message: str, expression: str, column: int) -> None:
        self.reason = message
        self.expression = expression
        self.column = column
        caret = " " * (column - 1) + "^"
        super().__init__(f"{message} (column {column})\n  {expression}\n  {caret}")


@dataclass(frozen=True)
class Token:
    kind: str  # num, field, name, op, lparen, rparen, comma, end
    text: str
    column: int  # 1-based


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<field>\$\$?[A-Za-z_\u4e00-\u9fff][\w\u3001\uff1a\uff08\uff09]*)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>\*\*|==|!=|>=|<=|[-+*/<>&|])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)

_COMPARE = {">": "Gt", ">=": "Ge", "<": "Lt", "<=": "Le", "==": "Eq", "!=": "Ne"}


def tokenize(expr: str) -> list[Token]:
    """Split an expression into tokens, failing at the first character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if m is None:
            ch = expr[pos]
            hint = " (fields start with `$`, e.g. `$close`)" if ch == "$" else ""
            raise ExpressionSyntaxError(f"unexpected character {ch!r}{hint}", expr, pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(expr) + 1))
    return tokens


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0

    # token helpers
    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None, column: int | None = None) -> ExpressionSyntaxError:
        col = column if column is not None else (tok or self.peek()).column
        return ExpressionSyntaxError(message, self.expr, col)

    def expect(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            found = "end of expression" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {what}, found {found}", tok)
        return self.next()

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        node = self.comparison()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text!r} after a complete expression", tok)
        return node

    def comparison(self) -> Node:
        left = self.bit_or()
        tok = self.peek()
        if tok.kind == "op" and tok.text in _COMPARE:
            self.next()
            right = self.bit_or()
            nxt = self.peek()
            if nxt.kind == "op" and nxt.text in _COMPARE:
                raise self.error("chained comparisons are not supported; combine them with And(...)", nxt)
            return self.binary(_COMPARE[tok.text], left, right, tok)
        return left

    def bit_or(self) -> Node:
        node = self.bit_and()
        while self.peek().kind == "op" and self.peek().text == "|":
            tok = self.next()
            node = self.binary("Or", node, self.bit_and(), tok)
        return node

    def bit_and(self) -> Node:
        node = self.arith()
        while self.peek().kind == "op" and self.peek().text == "&":
            tok = self.next()
            node = self.binary("And", node, self.arith(), tok)
        return node

    def arith(self) -> Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            tok = self.next()
            node = self.binary("Add" if tok.text == "+" else "Sub", node, self.term(), tok)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/"):
            tok = self.next()
            node = self.binary("Mul" if tok.text == "*" else "Div", node, self.unary(), tok)
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in "+-" and tok.text:
            self.next()
            operand = self.unary()
            if tok.text == "+":
                return operand
            if isinstance(operand, Const):
                return Const(-operand.value, tok.column)
            return Call("Mul", (Const(-1, tok.column), operand), (), tok.column)
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "**":
            self.next()
            return self.binary("Power", base, self.unary(), tok)
        return base

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "num":
            self.next()
            text = tok.text
            is_int = re.fullmatch(r"\d+", text) is not None
            return Const(int(text) if is_int else float(text), tok.column)
        if tok.kind == "field":
            self.next()
            if tok.text.startswith("$$"):
                raise self.error("point-in-time fields ($$name) are not supported by the engine", tok)
            return Field(tok.text[1:], tok.column)
        if tok.kind == "name":
            return self.call()
        if tok.kind == "lparen":
            self.next()
            node = self.comparison()
            self.expect("rparen", "')'")
            return node
        if tok.kind == "end":
            raise self.error("expression ends too early", tok)
        if tok.kind == "rparen":
            raise self.error("unbalanced ')' or a missing operand", tok)
        raise self.error(f"expected a field, a number or an operator call, found {tok.text!r}", tok)

    def call(self) -> Node:
        name_tok = self.next()
        name = name_tok.text
        if self.peek().kind != "lparen":
            if name in OPERATORS:
                raise self.error(f"operator {name} must be called, e.g. {name}(...)", self.peek())
            raise self.error(f"unknown name {name!r} (fields start with `$`, e.g. `${name}`)", name_tok)
        if name not in OPERATORS or name.startswith("_"):  # _names are the engine's internal nodes
            if name in UNSUPPORTED:
                raise self.error(f"operator {name} is not supported by the engine: {UNSUPPORTED[name]}", name_tok)
            close = [k for k in OPERATORS if k.lower() == name.lower()]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise self.error(f"unknown operator {name!r}{hint}", name_tok)
        self.next()  # (
        args: list[tuple[Node, int]] = []
        if self.peek().kind != "rparen":
            while True:
                col = self.peek().column
                args.append((self.comparison(), col))
                if self.peek().kind == "comma":
                    self.next()
                    continue
                break
        close_tok = self.expect("rparen", "',' or ')'")
        return self.build(name, name_tok, args, close_tok)

    def build(self, name: str, name_tok: Token, args: list[tuple[Node, int]], close_tok: Token) -> Node:
        op = OPERATORS[name]
        want = op.n_args + len(op.params)
        if len(args) != want:
            sig = ", ".join([f"x{i + 1}" for i in range(op.n_args)] + [p.replace("ewindow", "window") for p in op.params])
            col = name_tok.column if len(args) < want else args[want][1]
            raise self.error(f"{name} takes {want} arguments ({name}({sig})), got {len(args)}", column=col)
        inputs: list[Node] = []
        for node, col in args[: op.n_args]:
            if isinstance(node, Const) and not op.accepts_const:
                raise self.error(f"{name} needs an expression here, not the number {node.value!r}", column=col)
            inputs.append(node)
        if op.n_args >= 2 and all(isinstance(n, Const) for n in inputs):
            raise self.error(f"{name} needs at least one expression input, got only numbers", name_tok)
        params: list[int | float] = []
        for (node, col), kind in zip(args[op.n_args :], op.params, strict=True):
            if not isinstance(node, Const):
                raise self.error(f"{name}'s {kind.replace('ewindow', 'window')} must be a number literal", column=col)
            v = node.value
            if kind in ("window", "shift"):
                if not is_int_like(v):
                    raise self.error(f"{name}'s window must be an integer, got {v!r}", column=col)
                v = int(v)
                if kind == "window" and v < 0:
                    raise self.error(f"{name}'s window must be >= 0, got {v}", column=col)
            elif kind == "ewindow" and is_int_like(v):
                v = int(v)
            params.append(v)
        problem = op.check(tuple(params))
        if problem:
            raise self.error(problem, name_tok)
        return Call(name, tuple(inputs), tuple(params), name_tok.column)

    def binary(self, name: str, left: Node, right: Node, tok: Token) -> Node:
        if isinstance(left, Const) and isinstance(right, Const):
            return fold(name, left, right, self, tok)
        return Call(name, (left, right), (), tok.column)


def fold(name: str, left: Const, right: Const, parser: _Parser, tok: Token) -> Const:
    """Two numbers combine as Python's eval would combine them inside Qlib."""
    a, b = left.value, right.value
    try:
        if name == "Add":
            v = a + b
        elif name == "Sub":
            v = a - b
        elif name == "Mul":
            v = a * b
        elif name == "Div":
            v = a / b
        elif name == "Power":
            v = a**b
        else:
            raise parser.error(f"{name} of two numbers is not an expression", tok)
    except ZeroDivisionError:
        raise parser.error("division by zero between two numbers", tok) from None
    if isinstance(v, complex):
        raise parser.error("a negative number to a fractional power", tok)
    return Const(v, left.column)


def parse(expr: str) -> Node:
    """Parse one Qlib expression (``"Mean($close, 5)/$close"``) into a typed AST node."""
    if not isinstance(expr, str):
        raise TypeError(f"expected an expression string, got {type(expr).__name__}")
    return _Parser(expr).parse()
