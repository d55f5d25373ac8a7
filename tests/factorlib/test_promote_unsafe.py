"""Untrusted factor code is refused with a clear reason and nothing is written: not generated.py, not VERSION, not
a snapshot. Static cases never run; the endless loop and the memory bomb are stopped by the sandbox's limits."""

from __future__ import annotations

import ast
import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, update

from rdbridge.factorlib import package as pkg
from rdbridge.factorlib import safety
from rdbridge.factorlib.promote import promote
from rdbridge.registry import make_engine, session_scope
from rdbridge.registry.models import Factor, FactorPackageVersion, Loop, Task, Workspace, factor_id_for

from .promotion_support import SAMPLE, ingested

READ = 'df = pd.read_hdf("daily_pv.h5", key="data")'
WRITE = 'out.to_frame("F").to_hdf("result.h5", key="data")'


def _script(body: str, imports: str = "") -> str:
    lines = ["import numpy as np", "import pandas as pd", *filter(None, [imports]), "", "def calculate_F():",
             f"    {READ}", *(f"    {b}" for b in body.splitlines()), "    out = df['$close'] * 1.0", f"    {WRITE}",
             "", 'if __name__ == "__main__":', "    calculate_F()", ""]
    return "\n".join(lines)


STATIC = {
    "open": (_script("open('/etc/passwd').read()"), "'open' is not allowed"),
    "os": (_script("os.system('touch /tmp/pwned')", "import os"), "import of 'os' is not allowed"),
    "subprocess": (_script("subprocess.run(['id'])", "import subprocess"), "import of 'subprocess' is not allowed"),
    "socket": (_script("socket.create_connection(('1.2.3.4', 80))", "from socket import socket"), "import from 'socket'"),
    "eval": (_script("x = eval('1+1')"), "'eval' is not allowed"),
    "__import__": (_script("m = __import__('os')"), "'__import__' is not allowed"),
    "getattr_dunder": (_script("b = getattr(df, '__class__')"), "getattr with a dunder"),
    "dunder_attr": (_script("g = df.__class__.__init__.__globals__"), "dunder attribute '__class__'"),
    "globals": (_script("globals()['np'] = None"), "'globals' is not allowed"),
    "second_write": (_script("df.to_csv('leak.csv')"), "'to_csv' (file I/O"),
    "other_read": (_script("x = pd.read_hdf('/etc/other.h5')"), "read_hdf of anything but"),
}


@pytest.mark.parametrize("case", list(STATIC))
def test_static_check_names_the_reason(case: str) -> None:
    code, reason = STATIC[case]
    reasons = safety.check(ast.parse(code))
    assert any(reason in r for r in reasons), reasons


def test_static_check_accepts_the_plain_rdagent_script() -> None:
    assert safety.check(ast.parse(_script("r = df['$close'].groupby(level='instrument').pct_change()"))) == []


def _accepted_factor_workspace(url: str) -> tuple[str, Path]:
    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        loop = s.scalars(select(Loop).where(Loop.decision.is_(True), Loop.action == "factor")).first()
        task = s.scalars(select(Task).where(Task.experiment_id == loop.experiment_id, Task.task_type == "factor")).first()
        ws = Path(s.get(Workspace, task.workspace_id).workspace_path)
        exp = loop.experiment_id
    engine.dispose()
    return exp, ws


RUNTIME = {
    "infinite_loop": (_script("while True:\n    pass"), "CPU limit"),
    "memory_bomb": (_script("big = np.ones(10**11)"), "Unable to allocate"),
}
CASES = {**{k: v for k, v in STATIC.items() if k in ("open", "os", "subprocess", "socket", "eval", "__import__",
                                                        "getattr_dunder")}, **RUNTIME}


@pytest.mark.parametrize("case", list(CASES))
def test_unsafe_factor_is_refused_and_nothing_is_written(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RDBRIDGE_HOME", str(tmp_path / "home"))
    code, reason = CASES[case]
    trace = tmp_path / "src"
    shutil.copytree(SAMPLE, trace, symlinks=True)
    _, url = ingested(trace, tmp_path / "real")
    exp, ws = _accepted_factor_workspace(url)
    # The accepted loop's factor.py becomes the unsafe script, recorded in the registry as ingest records code
    # (id and sha256 of name + code): as if RD-Agent had written it (its signed pickles cannot be rewritten here).
    (ws / "factor.py").write_text(code, encoding="utf-8")
    engine = make_engine(url)
    with session_scope(engine, write=True) as s:
        row = s.scalars(select(Factor).where(Factor.experiment_id == exp)).one()
        s.execute(update(Factor).where(Factor.factor_id == row.factor_id).values(
            factor_id=factor_id_for(row.factor_name, code), code_sha256=hashlib.sha256(code.encode()).hexdigest()))
    engine.dispose()
    package = pkg.init_package(tmp_path / "package")
    files = {p: p.read_bytes() for p in (package / "rd_factors_lib").iterdir()}

    report = promote(url, package, limits={"cpu": 3, "wall": 120.0})

    refused = [o for o in report.factors if o.experiment_id == exp]
    assert refused and all(o.status == "refused" for o in refused)
    assert any(reason in o.reason for o in refused), [o.reason for o in refused]
    assert report.version_after == "0.1.0"
    assert {p: p.read_bytes() for p in (package / "rd_factors_lib").iterdir()} == files
    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        assert s.scalars(select(FactorPackageVersion.version)).all() == ["0.1.0"]
        row = s.scalars(select(Factor).where(Factor.experiment_id == exp)).one()
        assert row.promotion_status == "refused" and reason in (row.promotion_error or "")
        assert row.impl_func is None and row.impl_version is None
    engine.dispose()
    assert not Path("/tmp/pwned").exists()


def test_cli_exits_1_and_names_the_reason_when_a_factor_is_refused(tmp_path: Path) -> None:
    from .promotion_support import run_cli

    _, url = ingested(SAMPLE, tmp_path / "t")
    exp, ws = _accepted_factor_workspace(url)
    (ws / "factor.py").write_text(STATIC["eval"][0], encoding="utf-8")  # not what the registry ingested
    res = run_cli("factorlib", "promote", "--db", url, "--package", str(pkg.init_package(tmp_path / "p")), "--json",
                  home=tmp_path / "home")
    assert res.returncode == 1, res.stderr
    import json

    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["version_after"] == "0.1.0"
    assert any(f["status"] == "refused" and "no longer matches the code the registry ingested" in f["reason"]
               for f in doc["factors"] if f["experiment_id"] == exp)
