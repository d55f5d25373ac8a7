"""Read a pickle's structure (globals, state keys) symbolically, without unpickling it.

Why: the project forbids ``pickle.load`` on trace files, yet tests must check that synthetic traces look exactly like
genuine RD-Agent ones. Walking ``pickletools.genops`` with a stack of placeholders shows which globals a pickle names
and which attribute dicts each object receives, and never imports or calls anything.
"""
from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIGNED_HEADER = b"RDAGENT_SIGNED_PICKLE_V1\n"


class _Mark:
    pass


_MARK = _Mark()


@dataclass(eq=False)
class _Global:
    dotted: str


@dataclass(eq=False)
class _Obj:
    cls: Any
    args: Any = None
    state: Any = None


@dataclass
class PickleShape:
    """The globals a pickle references, per class the key sets of the dict states it BUILDs, and the symbolic root."""

    globals: set[str] = field(default_factory=set)
    states: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    root: Any = None


def strip_signature(data: bytes) -> bytes:
    """The pickle payload of a trace file, signed (rdagent >= 1.0) or plain (older releases)."""
    if data.startswith(SIGNED_HEADER):
        return data[len(SIGNED_HEADER) + 32 :]
    return data


def _key(k: Any) -> Any:
    try:
        hash(k)
        return k
    except TypeError:
        return ("<unhashable>", id(k))


def pickle_shape(data: bytes) -> PickleShape:
    """Walk the opcodes with a stack of placeholders: no class is looked up, no code runs.

    Accepts a signed trace file's bytes (header and HMAC are skipped) or a plain pickle.
    """
    shape = PickleShape()
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        items: list[Any] = []
        while True:
            x = stack.pop()
            if x is _MARK:
                items.reverse()
                return items
            items.append(x)

    def cls_name(c: Any) -> str:
        return c.dotted if isinstance(c, _Global) else "<dynamic>"

    for op, arg, _pos in pickletools.genops(strip_signature(data)):
        n = op.name
        if n == "STOP":
            shape.root = stack[-1] if stack else None
            continue
        if n in ("PROTO", "FRAME"):
            continue
        if n == "MARK":
            stack.append(_MARK)
        elif n == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif n in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1]
        elif n in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif n == "EMPTY_DICT":
            stack.append({})
        elif n == "EMPTY_LIST":
            stack.append([])
        elif n == "EMPTY_TUPLE":
            stack.append(())
        elif n == "EMPTY_SET":
            stack.append([])
        elif n == "DICT":
            items = pop_mark()
            stack.append({_key(items[i]): items[i + 1] for i in range(0, len(items), 2)})
        elif n == "LIST":
            stack.append(pop_mark())
        elif n in ("TUPLE", "FROZENSET"):
            stack.append(tuple(pop_mark()))
        elif n == "TUPLE1":
            stack.append((stack.pop(),))
        elif n == "TUPLE2":
            b = stack.pop()
            a = stack.pop()
            stack.append((a, b))
        elif n == "TUPLE3":
            c = stack.pop()
            b = stack.pop()
            a = stack.pop()
            stack.append((a, b, c))
        elif n == "APPEND":
            v = stack.pop()
            if isinstance(stack[-1], list):
                stack[-1].append(v)
        elif n in ("APPENDS", "ADDITEMS"):
            items = pop_mark()
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif n == "SETITEM":
            v = stack.pop()
            k = stack.pop()
            if isinstance(stack[-1], dict):
                stack[-1][_key(k)] = v
        elif n == "SETITEMS":
            items = pop_mark()
            if isinstance(stack[-1], dict):
                for i in range(0, len(items), 2):
                    stack[-1][_key(items[i])] = items[i + 1]
        elif n in ("GLOBAL", "INST"):
            mod, name = str(arg).split(" ", 1) if " " in str(arg) else (str(arg), "")
            g = _Global(f"{mod}.{name}")
            shape.globals.add(g.dotted)
            if n == "INST":
                stack.append(_Obj(g, tuple(pop_mark())))
            else:
                stack.append(g)
        elif n == "STACK_GLOBAL":
            name = stack.pop()
            mod = stack.pop()
            g = _Global(f"{mod}.{name}")
            shape.globals.add(g.dotted)
            stack.append(g)
        elif n in ("NEWOBJ", "REDUCE"):
            args = stack.pop()
            c = stack.pop()
            stack.append(_Obj(c, args))
        elif n == "NEWOBJ_EX":
            kw = stack.pop()
            args = stack.pop()
            c = stack.pop()
            stack.append(_Obj(c, (args, kw)))
        elif n == "OBJ":
            items = pop_mark()
            stack.append(_Obj(items[0], tuple(items[1:])))
        elif n == "BUILD":
            st = stack.pop()
            obj = stack[-1]
            if isinstance(obj, _Obj):
                obj.state = st
                d = st[0] if isinstance(st, tuple) and len(st) == 2 and isinstance(st[0], dict) else st
                if isinstance(d, dict):
                    keys = tuple(sorted(str(k) for k in d))
                    shape.states.setdefault(cls_name(obj.cls), set()).add(keys)
        elif n == "POP":
            stack.pop()
        elif n == "POP_MARK":
            pop_mark()
        elif n == "DUP":
            stack.append(stack[-1])
        elif n == "BINPERSID":
            stack.pop()
            stack.append(_Obj(_Global("<persid>")))
        elif n == "PERSID":
            stack.append(_Obj(_Global("<persid>")))
        elif n in ("NEWTRUE", "NEWFALSE"):
            stack.append(n == "NEWTRUE")
        elif op.stack_before == [] and len(op.stack_after) == 1:
            stack.append(arg)  # scalars: ints, floats, strings, bytes, None, True, False, EXT codes
        else:
            raise ValueError(f"pickle_shape: unhandled opcode {n}")
    return shape


def trace_shape(log_dir: Path) -> PickleShape:
    """The union of the shapes of every ``*.pkl`` under a trace's log folder (``root`` is left empty)."""
    total = PickleShape()
    for f in sorted(Path(log_dir).rglob("*.pkl")):
        s = pickle_shape(f.read_bytes())
        total.globals |= s.globals
        for cls, keys in s.states.items():
            total.states.setdefault(cls, set()).update(keys)
    return total
