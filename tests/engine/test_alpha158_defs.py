"""The Alpha158 list we build ourselves must be pyqlib's list, name for name and expression for expression."""

from __future__ import annotations

import pytest

from rdbridge.contracts.alpha158 import ALPHA158, WINDOWS, alpha158_expressions, families


@pytest.mark.qlib
def test_alpha158_equals_pyqlib_default_config() -> None:
    from qlib.contrib.data.loader import Alpha158DL

    exprs, names = Alpha158DL.get_feature_config()
    ours = alpha158_expressions()
    assert list(ours) == list(names)
    assert list(ours.values()) == list(exprs)


def test_alpha158_has_158_unique_names_in_families() -> None:
    names = [f.name for f in ALPHA158]
    assert len(names) == 158
    assert len(set(names)) == 158
    fams = {fam.name: fam for fam in families()}
    for fam in fams.values():
        assert fam.description.strip(), f"family {fam.name} has no description"
        members = [f for f in ALPHA158 if f.family == fam.name]
        assert len(members) == (len(WINDOWS) if fam.rolling else 1), fam.name
    assert {f.family for f in ALPHA158} == set(fams)


def test_rolling_members_carry_their_window() -> None:
    for f in ALPHA158:
        fam = next(x for x in families() if x.name == f.family)
        if fam.rolling:
            window = int(f.name[len(fam.name):])
            assert window in WINDOWS
            assert f"{window}" in f.expression
            assert f.expression == fam.template.format(d=window)
