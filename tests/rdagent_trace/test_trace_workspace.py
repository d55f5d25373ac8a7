"""Workspace resolution, file listing / hashing with links, kinds, qlib_res.csv and the portfolio report."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest

from rdbridge.rdagent_trace import (
    BadFormatError,
    ForbiddenClassError,
    NotUtf8Error,
    describe_workspace,
    read_portfolio_report,
    read_qlib_res,
    resolve_workspace,
)
from rdbridge.rdagent_trace.workspace import workspace_kind, workspace_name
from rdtrace_helpers import LEGACY, SAMPLE

UUID = "995f428c168a438aad155657a5d00701"


@pytest.mark.parametrize("recorded", [
    f"/home/quant/RD-Agent/git_ignore_folder/RD-Agent_workspace/{UUID}",
    f"C:\\Users\\quant\\RD-Agent\\git_ignore_folder\\RD-Agent_workspace\\{UUID}",
    f"C:\\Users\\quant\\workspace\\{UUID}\\",
    f"/mnt/c/Users/quant/workspace/{UUID}/",
    f"\\\\wsl$\\Ubuntu\\home\\quant\\workspace\\{UUID}",
])
def test_recorded_paths_resolve_by_folder_name(recorded: str) -> None:
    wid, folder = resolve_workspace(recorded, SAMPLE / "workspace")
    assert wid == UUID and folder == SAMPLE / "workspace" / UUID


def test_unsafe_or_absent_names() -> None:
    for bad in ("", "/", "..", "C:\\", "/x/..", "/x/.hidden"):
        assert workspace_name(bad) is None, bad
    assert resolve_workspace("/elsewhere/workspace/ffff", SAMPLE / "workspace") == ("ffff", None)


def test_files_hashes_and_links(tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    ws = root / "w1"
    (ws / "sub").mkdir(parents=True)
    (ws / "factor.py").write_text("x = 1\n")
    (ws / "sub" / "a.bin").write_bytes(b"\x00\x01" * 1000)
    data = tmp_path / "data"
    data.mkdir()
    (data / "daily_pv.h5").write_bytes(b"panel" * 100)
    os.symlink("../../data/daily_pv.h5", ws / "daily_pv.h5")           # into the --data-root: hashed
    os.symlink(tmp_path / "absent.h5", ws / "gone.h5")                   # dangling
    outside = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, ws / "escape.txt")                               # escapes: recorded, never read
    os.symlink(data, ws / "datadir")                                     # a linked folder is not walked
    # without --data-root, the parent of the workspace root is not trusted: the data link is recorded, not read
    untrusted, _ = describe_workspace(ws, workspace_root=root, recorded_path="/x/w1", workspace_id="w1")
    assert next(f for f in untrusted.files if f.relpath == "daily_pv.h5").sha256 is None
    info, errors = describe_workspace(ws, workspace_root=root, recorded_path="/x/w1", workspace_id="w1",
                                      data_roots=(data,))
    assert errors == []
    files = {f.relpath: f for f in info.files}
    assert set(files) == {"factor.py", "sub/a.bin", "daily_pv.h5", "gone.h5", "escape.txt", "datadir"}
    assert files["factor.py"].sha256 == hashlib.sha256(b"x = 1\n").hexdigest() and not files["factor.py"].is_symlink
    assert files["sub/a.bin"].size_bytes == 2000
    assert files["daily_pv.h5"].sha256 == hashlib.sha256(b"panel" * 100).hexdigest()
    assert files["daily_pv.h5"].is_symlink and files["daily_pv.h5"].size_bytes == 500
    assert files["gone.h5"].dangling and files["gone.h5"].sha256 is None
    assert files["escape.txt"].is_symlink and not files["escape.txt"].dangling and files["escape.txt"].sha256 is None
    assert files["datadir"].is_symlink and files["datadir"].sha256 is None
    assert info.kind == "factor" and info.code == {"factor.py": "x = 1\n"} and info.exists


def test_kinds() -> None:
    assert workspace_kind(["factor.py", "result.h5"]) == "factor"
    assert workspace_kind(["model.py"]) == "model"
    assert workspace_kind(["model.py", "conf_sota_factors_model.yaml"]) == "experiment"
    assert workspace_kind(["qlib_res.csv"]) == "experiment"
    assert workspace_kind(["notes.txt"]) == "unknown"
    assert workspace_kind([], "ModelFBWorkspace") == "model"


def test_non_utf8_code_is_named(tmp_path: Path) -> None:
    ws = tmp_path / "workspace" / "w"
    ws.mkdir(parents=True)
    (ws / "factor.py").write_bytes("name = '动量'\n".encode("gbk"))
    info, errors = describe_workspace(ws, workspace_root=tmp_path / "workspace", recorded_path="w", workspace_id="w")
    assert [type(e) for e in errors] == [NotUtf8Error]
    assert errors[0].kind == "not_utf8" and str(ws / "factor.py") in str(errors[0])
    assert "factor.py" not in info.code and info.files[0].sha256  # still listed and hashed


def test_qlib_res_matches_pandas_on_genuine_files() -> None:
    files = sorted((SAMPLE / "workspace").glob("*/qlib_res.csv"))
    assert len(files) == 3
    for f in files:
        expected = pd.read_csv(f, index_col=0).iloc[:, 0]
        assert read_qlib_res(f) == {str(k): float(v) for k, v in expected.items()}


@pytest.mark.parametrize("text,where", [
    (",0\nIC,0.1\nICIR,abc\n", "line 3"),
    (",0\nIC,0.1,7\n", "line 2"),
    ("", "empty"),
    (",0\n", "no numeric"),
])
def test_qlib_res_bad_rows(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "qlib_res.csv"
    f.write_text(text)
    with pytest.raises(BadFormatError) as info:
        read_qlib_res(f)
    assert info.value.kind == "bad_format" and str(f) in str(info.value) and where in str(info.value)


def test_qlib_res_nan_dropped(tmp_path: Path) -> None:
    f = tmp_path / "qlib_res.csv"
    f.write_text(",0\nIC,0.5\n1day.pa,\nICIR,nan\n")
    assert read_qlib_res(f) == {"IC": 0.5}


def test_portfolio_report_parquet_and_legacy_pickle(tmp_path: Path) -> None:
    exp = next(p.parent for p in (SAMPLE / "workspace").glob("*/ret.parquet"))
    df = read_portfolio_report(exp)
    pd.testing.assert_frame_equal(df, pd.read_parquet(exp / "ret.parquet"))
    legacy = next(p.parent for p in (LEGACY / "workspace").glob("*/ret.pkl"))
    old = read_portfolio_report(legacy)
    assert isinstance(old, pd.DataFrame) and {"account", "return", "turnover", "bench"} <= set(old.columns)
    assert isinstance(old.index, pd.DatetimeIndex) and len(old) > 50
    assert read_portfolio_report(tmp_path) is None


def test_malicious_ret_pkl_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "ret.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ForbiddenClassError):
        read_portfolio_report(tmp_path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "ret.pkl").write_bytes(pickle.dumps({"not": "a frame"}))
    with pytest.raises(BadFormatError):
        read_portfolio_report(tmp_path)
