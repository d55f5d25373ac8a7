"""Differential fuzzing of the engine against pyqlib 0.9.7: random well-formed Qlib expressions, computed by both.

``generate(seed, count)`` draws expressions over every supported operator: windows 0-3 and longer, constants on
either side, conditions used as numbers and numbers as conditions, ties (prices on a tick, integer-valued
computed columns), divisions by zero, logs of negatives and nested windows. ``run(panel_dir, exprs)`` computes a
batch with the engine in a subprocess (``python -m tests.engine.fuzz --worker``; a crash names the expression by
bisecting the batch instead of killing the caller) and with pyqlib in this process (``kernels=1``), and classifies
each expression: equal, differs, refused by the engine only, refused by both, crashed. Used by
``test_fuzz_qlib.py`` (a few hundred expressions, bounded) and ``benchmarks/fuzz_engine.py`` (thousands, by hand).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

FIELDS = ("$close", "$open", "$high", "$low", "$volume", "$vwap", "$factor")
WINDOWS = (0, 1, 1, 2, 2, 3, 3, 5, 10, 20)
SHIFTS = (-2, -1, 0, 1, 1, 2, 5)
CONSTS = ("0", "1", "2", "-1", "0.5", "5", "10", "1e-12")
ROLLING = ("Mean", "Sum", "Std", "Var", "Skew", "Kurt", "Max", "Min", "Med", "Mad", "Rank", "Count", "Delta",
           "Slope", "Rsquare", "Resi", "WMA", "EMA", "IdxMax", "IdxMin")
MIN_WINDOW = {"Skew": 3, "Kurt": 4}
ROOT = Path(__file__).resolve().parents[2]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def window(self, op: str = "") -> int:
        w = self.r.choice(WINDOWS)
        lo = MIN_WINDOW.get(op, 1)
        return w if w == 0 or w >= lo else lo

    def num(self, depth: int) -> str:
        r = self.r
        if depth <= 0 or r.random() < 0.15:
            return r.choice(FIELDS)
        d = depth - 1
        k = r.random()
        if k < 0.18:
            op = r.choice("+-*/")
            a, b = self.num(d), self.num(d) if r.random() < 0.6 else r.choice(CONSTS)
            if r.random() < 0.25:
                a, b = b, a
            if a in CONSTS and b in CONSTS:
                b = self.num(d)
            return f"({a} {op} {b})"
        if k < 0.45:
            op = r.choice(ROLLING)
            x = self.num(d) if r.random() < 0.85 else self.cond(d)
            if op == "EMA" and r.random() < 0.2:
                return f"EMA({x}, 0.5)"
            return f"{op}({x}, {self.window(op)})"
        if k < 0.52:
            return f"Quantile({self.num(d)}, {self.window()}, {r.choice((0.0, 0.2, 0.3, 0.5, 0.8, 1.0))})"
        if k < 0.60:
            x = self.num(d) if r.random() < 0.8 else self.cond(d)
            return f"Ref({x}, {r.choice(SHIFTS)})"
        if k < 0.68:
            op = r.choice(("Corr", "Cov"))
            w = self.window()
            if op == "Corr" and w == 0:
                w = 2
            return f"{op}({self.num(d)}, {self.num(d)}, {w})"
        if k < 0.76:
            op = r.choice(("Greater", "Less"))
            b = self.num(d) if r.random() < 0.6 else r.choice(CONSTS)
            return f"{op}({self.num(d)}, {b})"
        if k < 0.84:
            op = r.choice(("Abs", "Sign", "Log"))
            return f"{op}({self.num(d)})"
        if k < 0.88:
            return f"Power({self.num(d)}, {r.choice(('2', '0.5', '-1', '3'))})"
        if k < 0.96:
            a = self.num(d) if r.random() < 0.6 else r.choice(CONSTS)
            b = self.num(d) if r.random() < 0.6 else r.choice(CONSTS)
            return f"If({self.cond(d)}, {a}, {b})"
        return f"({self.cond(d)} + {r.choice(('0', '1'))})"  # a condition as a number

    def cond(self, depth: int) -> str:
        r = self.r
        d = max(depth - 1, 0)
        k = r.random()
        if depth <= 0 or k < 0.6:
            op = r.choice((">", ">=", "<", "<=", "==", "!="))
            b = self.num(d) if r.random() < 0.6 else r.choice(CONSTS)
            return f"({self.num(d)} {op} {b})"
        if k < 0.75:
            return f"{r.choice(('And', 'Or'))}({self.cond(d)}, {self.cond(d)})"
        if k < 0.85:
            return f"({self.cond(d)} {r.choice('&|')} {self.cond(d)})"
        if k < 0.92:
            return f"Not({self.cond(d)})"
        return f"{r.choice(('And', 'Or'))}({self.cond(d)}, Ref({self.cond(d)}, {r.choice((1, 2))}))"


def generate(seed: int, count: int, max_depth: int = 4) -> list[str]:
    """``count`` distinct random expressions of depth 1..``max_depth`` (reproducible from ``seed``)."""
    g = _Gen(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        e = g.num(g.r.randint(1, max_depth))
        if e not in seen and not e.startswith("$"):
            seen.add(e)
            out.append(e)
    return out


# --- the engine in a subprocess -----------------------------------------------------------------------------------


def _worker(panel_path: str, batch_path: str, out_path: str) -> None:
    """Compute a batch (all at once; if that raises, each alone) and write the frame and the per-name errors."""
    from rdbridge.engine import compute

    panel = pl.read_parquet(panel_path)
    exprs: dict[str, str] = json.loads(Path(batch_path).read_text())
    if os.environ.get("RDBRIDGE_FUZZ_CRASH_ON") in exprs.values():  # the test of crash handling: die as a crash does
        os.abort()
    errors: dict[str, str] = {}
    try:
        frame = compute(panel, exprs)
    except Exception:  # noqa: BLE001 - each alone, so one refused expression names itself
        frames = []
        for name, e in exprs.items():
            try:
                frames.append(compute(panel, {name: e}))
            except Exception as exc:  # noqa: BLE001
                errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        frame = frames[0] if frames else panel.select("instrument", "datetime")
        for f in frames[1:]:
            frame = frame.join(f, on=["instrument", "datetime"], how="full", coalesce=True)
    frame.sort(["instrument", "datetime"]).write_parquet(out_path)
    Path(out_path + ".errors.json").write_text(json.dumps(errors))


@dataclass
class EngineBatch:
    frame: pl.DataFrame | None
    errors: dict[str, str] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)  # name -> how the process died


def _spawn(panel_path: Path, exprs: dict[str, str], work: Path, timeout: float) -> tuple[int, str]:
    work.mkdir(parents=True, exist_ok=True)
    batch, out = work / "batch.json", work / "out.parquet"
    batch.write_text(json.dumps(exprs))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        run = subprocess.run([sys.executable, "-m", "tests.engine.fuzz", "--worker", str(panel_path), str(batch),
                              str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -999, "timed out"
    return run.returncode, run.stderr[-500:]


def engine_batch(panel_path: Path, exprs: dict[str, str], work: Path, timeout: float = 600) -> EngineBatch:
    """The engine's results for ``exprs`` from a fresh process; a crashing batch is bisected down to the
    expressions that crash alone."""
    code, err = _spawn(panel_path, exprs, work, timeout)
    if code == 0:
        out = work / "out.parquet"
        errors = json.loads(Path(str(out) + ".errors.json").read_text())
        return EngineBatch(pl.read_parquet(out), errors)
    if len(exprs) == 1:
        name = next(iter(exprs))
        return EngineBatch(None, {}, {name: f"exit {code}: {err.strip()[-300:]}"})
    items = list(exprs.items())
    half = len(items) // 2
    parts = [engine_batch(panel_path, dict(items[:half]), work / "a", timeout),
             engine_batch(panel_path, dict(items[half:]), work / "b", timeout)]
    frames = [p.frame for p in parts if p.frame is not None]
    frame = frames[0] if frames else None
    for f in frames[1:]:
        frame = frame.join(f.drop([c for c in f.columns if c in frame.columns and c not in ("instrument", "datetime")]),
                           on=["instrument", "datetime"], how="full", coalesce=True)
    return EngineBatch(frame, {**parts[0].errors, **parts[1].errors}, {**parts[0].crashed, **parts[1].crashed})


# --- pyqlib and the comparison ---------------------------------------------------------------------------------------


def qlib_batch(qlib_dir: Path, exprs: dict[str, str]) -> tuple[pl.DataFrame | None, dict[str, str]]:
    """pyqlib's results for ``exprs`` (all at once; if that raises, each alone) and the ones it refuses."""
    from .qlib_ref import qlib_features

    try:
        return qlib_features(qlib_dir, exprs), {}
    except Exception:  # noqa: BLE001
        pass
    frame, errors = None, {}
    for name, e in exprs.items():
        try:
            f = qlib_features(qlib_dir, {name: e})
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        frame = f if frame is None else frame.join(f, on=["instrument", "datetime"], how="full", coalesce=True)
    return frame, errors


@dataclass
class Outcome:
    tested: int = 0
    agree: list[str] = field(default_factory=list)
    disagree: dict[str, str] = field(default_factory=dict)  # expression -> summary
    refused: dict[str, str] = field(default_factory=dict)  # the engine refuses, pyqlib computes
    both_refuse: list[str] = field(default_factory=list)
    qlib_only_refuses: list[str] = field(default_factory=list)  # pyqlib raises; the engine computes (a quirk)
    crashed: dict[str, str] = field(default_factory=dict)

    def add(self, other: Outcome) -> None:
        self.tested += other.tested
        self.agree += other.agree
        self.disagree.update(other.disagree)
        self.refused.update(other.refused)
        self.both_refuse += other.both_refuse
        self.qlib_only_refuses += other.qlib_only_refuses
        self.crashed.update(other.crashed)

    def line(self) -> str:
        both = len(self.agree) + len(self.disagree)
        pct = 100.0 * len(self.agree) / both if both else 100.0
        return (f"tested {self.tested} / agree {len(self.agree)} / disagree {len(self.disagree)} / refused "
                f"{len(self.refused)} (pyqlib computes) / crashed {len(self.crashed)}; both refuse "
                f"{len(self.both_refuse)}, pyqlib alone refuses {len(self.qlib_only_refuses)}; equal {pct:.2f}% "
                "of those both computed")


def compare(panel_path: Path, qlib_dir: Path, exprs: list[str], work: Path) -> Outcome:
    """Both tools on one batch, classified."""
    from .qlib_ref import compare_one

    named = {f"e{i}": e for i, e in enumerate(exprs)}
    eng = engine_batch(panel_path, named, work)
    ref, q_err = qlib_batch(qlib_dir, named)
    out = Outcome(tested=len(named))
    for name, e in named.items():
        if name in eng.crashed:
            out.crashed[e] = eng.crashed[name]
        elif name in q_err:
            (out.both_refuse if name in eng.errors else out.qlib_only_refuses).append(e)
        elif name in eng.errors:
            out.refused[e] = eng.errors[name]
        else:
            assert ref is not None and eng.frame is not None
            cols = ["instrument", "datetime", name]
            r = ref.select(cols).sort(["instrument", "datetime"])
            o = eng.frame.select(cols).join(r.select("instrument", "datetime"), on=["instrument", "datetime"],
                                            how="right").select(cols)
            m = compare_one(name, e, o, r)
            if m is None:
                out.agree.append(e)
            else:
                out.disagree[e] = m.summary()
    return out


def sub_expressions(expr: str) -> list[str]:
    """Every operator sub-expression of ``expr`` in Qlib syntax, smallest first."""
    from rdbridge.engine.ast import Call, walk
    from rdbridge.engine.parser import parse

    subs = {str(n) for n in walk(parse(expr)) if isinstance(n, Call)}
    return sorted(subs, key=lambda s: (len(s), s))


def smallest_failing(panel_path: Path, qlib_dir: Path, expr: str, work: Path) -> str:
    """The smallest sub-expression of ``expr`` on which the engine and pyqlib already differ."""
    subs = sub_expressions(expr)
    got = compare(panel_path, qlib_dir, subs, work)
    for s in subs:
        if s in got.disagree or s in got.refused or s in got.crashed:
            return s
    return expr


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:])
    else:
        sys.exit("usage: python -m tests.engine.fuzz --worker PANEL BATCH OUT")
