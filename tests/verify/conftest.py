"""Fixtures for the verify tests: the standard panel, rd_factors_lib bundles of chosen versions, a platform DB."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "factors-lib" / "rd_factors_lib"


@pytest.fixture(scope="session")
def std_panel() -> pl.DataFrame:
    from rdbridge.verify.dataset import standard

    return standard()[0]


BundleMaker = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleMaker:
    """A tar.gz (or folder) holding rd_factors_lib at ``version``, optionally with a source edit in alpha158.py,
    the shape `rdbridge factorlib bundle` writes."""

    def make(version: str, *, edit: tuple[str, str] | None = None, as_dir: bool = False) -> Path:
        root = tmp_path / f"bundle-{version}-{'dir' if as_dir else 'tgz'}"
        pkg = root / "rd_factors_lib"
        shutil.copytree(LIB, pkg, ignore=shutil.ignore_patterns("__pycache__"))
        (pkg / "VERSION").write_text(version + "\n", encoding="utf-8")
        if edit is not None:
            text = (pkg / "alpha158.py").read_text(encoding="utf-8")
            assert edit[0] in text
            (pkg / "alpha158.py").write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
        if as_dir:
            return root
        out = tmp_path / f"rd_factors_lib-{version}.tar.gz"
        with tarfile.open(out, "w:gz") as tar:
            tar.add(pkg, arcname="rd_factors_lib")
        return out

    return make
