"""Long fuzz run of the safe trace reader: mutants of the genuine trace pickles through the isolated reader pool.

Run:  .venv/bin/python benchmarks/fuzz_unpickle.py [--cases 100000] [--seed 1] [--workers 2]
Prints loaded / named-error / crashed / hung counts (and the error kinds). Every case must be loaded or a named
error; a crash or hang is counted by the pool (the worker is replaced) and makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import fuzz  # noqa: E402

from rdbridge.rdagent_trace.isolation import ReaderPool  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="reader processes (one mutator stream each)")
    ap.add_argument("--save", type=Path, default=None, help="write each crashing / hanging case here")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds without progress before a case is 'hung'")
    a = ap.parse_args()
    corpus = fuzz.load_corpus()
    print(f"corpus: {len(corpus)} genuine trace pickles, {sum(map(len, corpus))} bytes")
    mutators = [fuzz.Mutator(corpus, a.seed * 1000 + i) for i in range(a.workers)]
    pools = [ReaderPool(1, file_timeout=a.timeout) for _ in range(a.workers)]
    for p in pools:  # fork each worker now, from this thread (a replacement is forked by the thread that needs it)
        p.run("echo", (0,))
    parts: list[Counter[str]] = [Counter() for _ in range(a.workers)]
    t0 = time.perf_counter()
    done = 0
    try:
        with ThreadPoolExecutor(a.workers) as ex:
            while done < a.cases:  # chunks of 10,000, with running totals printed after each
                n = min(10_000, a.cases - done)
                per = [n // a.workers + (1 if i < n % a.workers else 0) for i in range(a.workers)]
                for i, c in enumerate(ex.map(lambda i: fuzz.run(pools[i], mutators[i], cases=per[i], save_dir=a.save),
                                             range(a.workers))):
                    parts[i] += c
                done += n
                print(f"  {done} cases, {time.perf_counter() - t0:.0f}s:",
                      json.dumps(fuzz.summary(sum(parts, Counter()))), flush=True)
    finally:
        for p in pools:
            p.close()
    counts: Counter[str] = sum(parts, Counter())
    s = fuzz.summary(counts)
    secs = time.perf_counter() - t0
    print(json.dumps(s))
    print("kinds:", dict(counts.most_common()))
    print(f"{s['cases']} cases in {secs:.0f}s ({s['cases'] / secs:.0f}/s), seed {a.seed}, {a.workers} workers")
    sys.exit(1 if s["crashed"] or s["hung"] or s["unnamed"] else 0)


if __name__ == "__main__":
    main()
