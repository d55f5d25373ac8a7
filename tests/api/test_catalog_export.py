"""`rdbridge catalog export` and `catalog schema` as a user runs them: five atomic files, each valid against
the printed JSON Schema, holding what the API serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

from rdbridge.contracts.catalog import CATALOG_FILES

from .conftest import Server
from .test_api_routes import walk
from .world import World


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_export_writes_five_schema_valid_files(backend: tuple[str, World], tmp_path: Path) -> None:
    url, _ = backend
    out = tmp_path / "catalogs"
    done = _cli("catalog", "export", "--out", str(out), "--db", url)
    assert done.returncode == 0, done.stderr
    schema_run = _cli("catalog", "schema")
    assert schema_run.returncode == 0, schema_run.stderr
    schemas = json.loads(schema_run.stdout)
    assert sorted(p.name for p in out.iterdir()) == sorted(CATALOG_FILES)  # no temp files left behind
    docs = {}
    for name in CATALOG_FILES:
        doc = json.loads((out / name).read_text(encoding="utf-8"))
        jsonschema.validate(doc, schemas[name])
        assert doc["version"] == 1 and doc["generated_at_utc"].endswith("Z") and doc["source"]
        docs[name] = doc
    assert len(docs["alpha158_meta.json"]["factors"]) == 158
    factors = docs["factor_catalog.json"]["factors"]
    assert len([f for f in factors if f["source"] == "alpha158"]) == 158
    assert len([f for f in factors if f["source"] == "rdagent"]) == 4
    assert len(docs["loop_catalog.json"]["loops"]) == 8
    assert [m["name"] for m in docs["model_catalog.json"]["models"]] == ["GRU_20D", "LGBM_Tab"]
    assert sorted(len(s["loops"]) for s in docs["strategy_catalog.json"]["strategies"]) == [1, 2]
    bad = dict(docs["loop_catalog.json"], loops=[{"loop_id": "x"}])
    try:
        jsonschema.validate(bad, schemas["loop_catalog.json"])
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema accepted a malformed loop entry")


def test_export_matches_what_the_api_serves(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert _cli("catalog", "export", "--out", str(out), "--db", server.db_url).returncode == 0
    with server.client() as c:
        for name, path, field in [("loop_catalog.json", "/catalog/loops", "loops"),
                                  ("factor_catalog.json", "/catalog/factors", "factors"),
                                  ("model_catalog.json", "/catalog/models", "models"),
                                  ("strategy_catalog.json", "/catalog/strategies", "strategies")]:
            exported = json.loads((out / name).read_text(encoding="utf-8"))[field]
            assert exported == walk(c, path, 7), name


def test_schema_of_one_file_and_unknown_name() -> None:
    one = _cli("catalog", "schema", "--name", "factor_catalog.json")
    assert one.returncode == 0 and list(json.loads(one.stdout)) == ["factor_catalog.json"]
    bad = _cli("catalog", "schema", "--name", "nope.json")
    assert bad.returncode == 2 and "nope.json" in bad.stderr
