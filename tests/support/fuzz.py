"""A seeded mutator over the genuine trace pickles, and a driver that runs the mutants through the isolated pool.

Mutations: bit flips, truncation, opcode splices (a run of opcodes from another genuine pickle inserted), and swapped
globals (a module/name pair replaced by another pair from the allow-list). The corpus is un-framed first (FRAME
opcodes are optional), so splices and swaps stay well-formed and reach the deep reconstructors instead of failing
on a frame boundary.
"""

from __future__ import annotations

import json
import pickletools
import random
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rdbridge.rdagent_trace.isolation import ReaderPool, TaskFailure
from rdbridge.rdagent_trace.signed import split_envelope

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIRS = (REPO / "tests" / "fixtures", REPO / "examples", Path("/work/shared/fixtures"))

# allow-listed globals (plus a few refused ones) a swap may put in place of a genuine one
EXTRA_GLOBALS = [
    ("builtins", "bytearray"), ("builtins", "list"), ("builtins", "range"), ("builtins", "set"), ("builtins", "dict"),
    ("builtins", "bytes"), ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"), ("pandas", "DataFrame"),
    ("pandas", "Series"), ("pandas", "DatetimeTZDtype"), ("pandas", "Categorical"), ("pandas", "CategoricalDtype"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"), ("pyarrow.lib", "_restore_array"),
    ("pyarrow.lib", "py_buffer"), ("pyarrow.lib", "chunked_array"), ("collections", "defaultdict"),
    ("collections", "OrderedDict"), ("_codecs", "encode"), ("pathlib", "PosixPath"), ("datetime", "timezone"),
    ("rdagent.core.proposal", "Hypothesis"), ("builtins", "getattr"), ("os", "system"),
]


def _unframe(data: bytes) -> bytes:
    cuts = [pos for op, _arg, pos in pickletools.genops(data) if op.name == "FRAME"]
    out, last = bytearray(), 0
    for pos in cuts:
        out += data[last:pos]
        last = pos + 9
    out += data[last:]
    return bytes(out)


def load_corpus(dirs: Iterable[Path] = CORPUS_DIRS) -> list[bytes]:
    """Payloads of every genuine trace pickle (signature envelope removed, frames removed)."""
    out: list[bytes] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.rglob("*.pkl")):
            if not f.is_file() or f.is_symlink():
                continue
            try:
                _digest, payload = split_envelope(f.read_bytes())
                out.append(_unframe(payload))
            except Exception:  # noqa: BLE001 - a deliberately damaged fixture: use it as it is
                out.append(f.read_bytes())
    return out


class Mutator:
    def __init__(self, corpus: list[bytes], seed: int) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)
        self._ops: dict[int, list[tuple[int, int]]] = {}
        self._globals: dict[int, list[tuple[int, int]]] = {}

    def _opcodes(self, i: int) -> list[tuple[int, int]]:
        """(start, end) of each opcode of corpus item i."""
        if i not in self._ops:
            data = self.corpus[i]
            spans: list[tuple[int, int]] = []
            try:
                ops = list(pickletools.genops(data))
            except Exception:  # noqa: BLE001
                ops = []
            for k, (_op, _arg, pos) in enumerate(ops):
                end = ops[k + 1][2] if k + 1 < len(ops) else len(data)
                spans.append((pos, end))
            self._ops[i] = spans
            g: list[tuple[int, int]] = []
            for k in range(2, len(ops)):
                if ops[k][0].name == "STACK_GLOBAL" and ops[k - 1][0].name.endswith("UNICODE") \
                        and ops[k - 2][0].name.endswith("UNICODE"):
                    g.append((ops[k - 2][2], ops[k][2]))
            self._globals[i] = g
        return self._ops[i]

    def mutate(self) -> bytes:
        rng = self.rng
        i = rng.randrange(len(self.corpus))
        data = bytearray(self.corpus[i])
        kind = rng.choice(("flip", "flip", "truncate", "splice", "splice", "swap", "swap", "mix"))
        if kind in ("flip", "mix"):
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
        if kind in ("truncate", "mix"):
            data = data[:rng.randrange(1, len(data))]
        if kind in ("splice", "mix"):
            j = rng.randrange(len(self.corpus))
            spans = self._opcodes(j)
            if spans:
                a = rng.randrange(len(spans))
                b = min(len(spans), a + rng.randint(1, 12))
                chunk = self.corpus[j][spans[a][0]:spans[b - 1][1]]
                mine = self._opcodes(i)
                at = rng.choice(mine)[0] if mine else rng.randrange(len(data))
                if at <= len(data):
                    data[at:at] = chunk
        if kind in ("swap", "mix"):
            self._opcodes(i)
            spots = self._globals.get(i) or []
            if spots and kind == "swap":
                start, end = rng.choice(spots)
                mod, name = rng.choice(EXTRA_GLOBALS)
                repl = bytearray()
                for text in (mod, name):
                    raw = text.encode()
                    repl += b"\x8c" + bytes([len(raw)]) + raw
                data[start:end] = repl
        return bytes(data)


def run(pool: ReaderPool, mutator: Mutator, *, cases: int | None = None, seconds: float | None = None,
        batch: int = 200, save_dir: Path | None = None) -> Counter[str]:
    """Run mutants through the pool in batches; a crash or hang costs only its case (named by the heartbeat)."""
    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    done = 0
    while (cases is None or done < cases) and (seconds is None or time.monotonic() - t0 < seconds):
        n = batch if cases is None else min(batch, cases - done)
        todo = [mutator.mutate() for _ in range(n)]
        offset = 0
        while offset < len(todo):
            out = next(pool.imap([(None, "check_many", (todo[offset:], offset), None)]))[1]
            if isinstance(out, TaskFailure):
                where = out.file or ""
                idx = int(where.split(":", 1)[1]) if where.startswith("case:") else offset
                kind = {"timed_out": "hung", "crashed": "crashed"}.get(out.error.kind, out.error.kind)
                counts[kind] += 1
                if save_dir is not None and kind in ("hung", "crashed"):
                    save_dir.mkdir(parents=True, exist_ok=True)
                    (save_dir / f"{kind}-{int(time.time() * 1000)}-{idx}.pkl").write_bytes(todo[idx])
                    (save_dir / f"{kind}-{int(time.time() * 1000)}-{idx}.txt").write_text(out.error.message)
                del todo[idx]  # the cases before it ran, but their outcomes died with the worker: run them again
                continue
            for kind in json.loads(out):
                counts["loaded" if kind == "loaded" else kind] += 1
            offset = len(todo)
        done += n
    return counts


def summary(counts: Counter[str]) -> dict[str, int]:
    named = sum(v for k, v in counts.items() if k not in ("loaded", "crashed", "hung") and not k.startswith("unnamed"))
    return {"cases": sum(counts.values()), "loaded": counts["loaded"], "named_error": named,
            "crashed": counts["crashed"], "hung": counts["hung"],
            "unnamed": sum(v for k, v in counts.items() if k.startswith("unnamed"))}
