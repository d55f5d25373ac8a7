"""Fuzz: mutants of the genuine trace pickles (bit flips, truncation, opcode splices, swapped globals) must each load
or end in a named error - never crash or hang the reader. Bounded to ~20 s; run through the isolated pool, so a crash
is counted (and fails this test) instead of killing pytest. The long run is `benchmarks/fuzz_unpickle.py`."""

from __future__ import annotations

import os

from rdbridge.rdagent_trace.isolation import ReaderPool
from support import fuzz

SECONDS = float(os.environ.get("RDBRIDGE_FUZZ_SECONDS", "20"))


def test_mutated_genuine_pickles_load_or_fail_by_name() -> None:
    corpus = fuzz.load_corpus()
    assert len(corpus) >= 50, "the genuine fixture pickles are the corpus"
    seed = int(os.environ.get("RDBRIDGE_FUZZ_SEED", "23"))
    with ReaderPool(1, file_timeout=10.0) as pool:
        counts = fuzz.run(pool, fuzz.Mutator(corpus, seed), seconds=SECONDS)
    s = fuzz.summary(counts)
    assert s["cases"] > 200, s
    assert (s["crashed"], s["hung"], s["unnamed"]) == (0, 0, 0), (s, counts)
    assert s["loaded"] > 0 and s["named_error"] > 0, s  # the mutator reaches both outcomes
