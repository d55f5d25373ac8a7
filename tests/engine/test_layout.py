"""The padded layout: every per-row column the compiled pass writes equals its definition, row by row."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rdbridge.engine.runner import PanelError, build_layout


@pytest.mark.parametrize("pad", [0, 1, 3])
def test_layout_columns_follow_the_instrument_runs(pad: int) -> None:
    inst = pl.Series(["b"] * 4 + ["a"] * 1 + ["c"] * 3)  # runs in panel order, not sorted by name
    lay = build_layout(inst, pad)
    rows: list[tuple[int, bool, float, int]] = []  # (first_real, is_pad, k, group) built the slow way
    at = 0
    for b, length in enumerate((4, 1, 3)):
        for i in range(pad + length):
            rows.append((at + pad, i < pad, float(i), b + 1))
        at += pad + length
    assert lay.n_rows == 8 and lay.n_padded == at and lay.max_block == pad + 4
    assert lay.first_real.tolist() == [r[0] for r in rows]
    assert lay.is_pad.tolist() == [r[1] for r in rows]
    assert lay.k.tolist() == [r[2] for r in rows]
    assert lay.group.tolist() == [r[3] for r in rows]
    assert lay.k.dtype == np.float64 and lay.group.dtype == np.uint32
    expected_positions = [i for i, r in enumerate(rows) if not r[1]]
    assert lay.positions.tolist() == expected_positions
    blocks = lay.blocks()
    copied = [p for s, n in zip(blocks.src_start, blocks.length) for p in range(s, s + n)]
    assert copied == expected_positions
    assert [d for d, n in zip(blocks.dst_start, blocks.length) for d in range(d, d + n)] == list(range(8))
    bits, n_pads = lay.validity()
    assert n_pads == 3 * pad
    if pad:
        valid = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")[: lay.n_padded]
        assert valid.astype(bool).tolist() == [not r[1] for r in rows]
    else:
        assert bits is None


def test_an_instrument_split_in_two_runs_is_refused() -> None:
    with pytest.raises(PanelError, match="not contiguous"):
        build_layout(pl.Series(["a", "a", "b", "a"]), 2)


def test_an_empty_panel_has_an_empty_layout() -> None:
    lay = build_layout(pl.Series([], dtype=pl.Utf8), 5)
    assert lay.n_rows == 0 and lay.n_padded == 0 and lay.blocks().length.size == 0
