"""`rdbridge factorlib promote` (the CLI) rebuilds the touched loops' factor_meta.json: the impl pointers it carries
equal the registry's factor rows, and the file's registered sha256 and its manifest entry follow the new bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from rdbridge.registry import make_engine, session_scope
from rdbridge.registry.models import Artifact, ArtifactFile, Factor

from .promotion_support import SAMPLE, ingested, run_cli


def _factor_meta(home: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in (home / "artifacts").glob("*/*/factor_meta.json")}


def test_cli_promote_refreshes_factor_meta(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _, url = ingested(SAMPLE, tmp_path)
    done = run_cli("materialize", "--db", url, "--json", home=home)
    assert done.returncode == 0, done.stderr
    metas = _factor_meta(home)
    assert metas
    before = {loop: json.loads(p.read_text()) for loop, p in metas.items()}
    assert all(f["impl_version"] is None for d in before.values() for f in d["factors"])

    promoted = run_cli("factorlib", "promote", "--db", url, "--json", home=home)
    assert promoted.returncode == 0, promoted.stderr
    report = json.loads(promoted.stdout)
    added = {o["factor_name"]: o for o in report["factors"] if o["status"] == "added"}
    assert added

    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        rows = {f.factor_id: f for f in s.scalars(select(Factor).where(Factor.promotion_status == "promoted"))}
        registered = {p: sha for p, sha in s.execute(
            select(ArtifactFile.path, ArtifactFile.sha256).join(Artifact).where(Artifact.root_kind == "store"))}
    engine.dispose()
    seen = 0
    for loop, path in _factor_meta(home).items():
        doc = json.loads(path.read_text())
        for f in doc["factors"]:
            row = rows.get(f["factor_id"])
            want = (row.impl_module, row.impl_func, row.impl_version) if row else (None, None, None)
            assert (f["impl_module"], f["impl_func"], f["impl_version"]) == want
            seen += row is not None
        rel = path.relative_to(home / "artifacts").as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert registered[rel] == digest
        manifest = json.loads((path.parent / "manifest.json").read_text())
        entry = next(m for m in manifest["files"] if m["name"] == "factor_meta.json")
        assert entry["sha256"] == digest
        if doc != before[loop]:
            assert any(f["impl_version"] == report["version_after"] for f in doc["factors"])
    assert seen == len(added)
