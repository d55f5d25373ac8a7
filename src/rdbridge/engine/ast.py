"""Typed AST of Qlib expressions.

Nodes are frozen dataclasses, so structurally equal sub-expressions compare and hash equal: that is what lets the
compiler compute a shared sub-expression (``Ref($close, 1)`` in twenty factors) exactly once. Source columns are kept
for error messages but excluded from equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every expression node."""

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Field(Node):
    """A stored field, ``$close`` -> ``Field("close")``."""

    name: str
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A number literal (Python int or float, like Qlib's eval gives the operators)."""

    value: int | float
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Call(Node):
    """An operator applied to expression inputs and literal parameters (windows, quantiles).

    ``Mean($close, 5)`` -> ``Call("Mean", (Field("close"),), (5,))``; ``$a + $b`` -> ``Call("Add", (a, b), ())``.
    """

    op: str
    args: tuple[Node, ...]
    params: tuple[int | float, ...] = ()
    column: int = field(default=0, compare=False, repr=False)
    _hash: int | None = field(default=None, init=False, compare=False, repr=False)

    def __hash__(self) -> int:
        # Cached: the compiler hashes every node of every request many times, and a frozen dataclass would rehash
        # the whole subtree each time (quadratic in depth).
        h = self._hash
        if h is None:
            h = hash((self.op, self.args, self.params))
            object.__setattr__(self, "_hash", h)
        return h

    def children(self) -> tuple[Node, ...]:
        return self.args

    def __str__(self) -> str:
        inner = [str(a) for a in self.args] + [repr(p) for p in self.params]
        return f"{self.op}({','.join(inner)})"


def walk(node: Node) -> list[Node]:
    """Every node below and including ``node``, children before parents, each unique node once."""
    seen: set[Node] = set()
    out: list[Node] = []
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        n, expanded = stack.pop()
        if expanded:
            if n not in seen:
                seen.add(n)
                out.append(n)
            continue
        if n in seen:
            continue
        stack.append((n, True))
        for c in reversed(n.children()):
            stack.append((c, False))
    return out


def fields_of(node: Node) -> set[str]:
    """Names of the stored fields an expression reads (without ``$``)."""
    return {n.name for n in walk(node) if isinstance(n, Field)}
