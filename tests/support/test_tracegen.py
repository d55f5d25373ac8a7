"""The synthetic trace generator must write what genuine RD-Agent traces hold (globals, state keys, tags, files).

Genuine traces are compared by pickletools disassembly only: ``pickle.load`` on trace files is forbidden here.
"""

from __future__ import annotations

import os
import pickletools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .pickle_shape import pickle_shape, strip_signature, trace_shape
from .tracegen import (
    SIGNED_HEADER,
    TracePaths,
    append_step,
    loop_workspace_ids,
    make_unreadable,
    remove_workspace,
    tamper_pickle,
    truncate_pickle,
    verify_signature,
    write_forbidden_pickle,
    write_non_utf8_code,
    write_trace,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"
FIXTURES = REPO / "tests" / "fixtures"
LEGACY = FIXTURES / "rdagent_legacy_fin_factor_trace"
HARD = FIXTURES / "rdagent_fin_factor_hard_trace"
QUANT = FIXTURES / "rdagent_fin_quant_trace"


def _tag_layout(log_root: Path) -> set[str]:
    """``Loop_i/step/tag`` (or top-level tag) of every pickle, without the run, pid and timestamp parts."""
    return {"/".join(f.relative_to(log_root).parts[1:-2]) for f in log_root.rglob("*.pkl")}


def _assert_same_shape(genuine_log: Path, synthetic_log: Path) -> None:
    g, s = trace_shape(genuine_log), trace_shape(synthetic_log)
    assert g.globals, f"no pickles found under {genuine_log}"
    assert s.globals == g.globals, (sorted(s.globals - g.globals), sorted(g.globals - s.globals))
    assert s.states == g.states


def test_fin_factor_matches_genuine_sample(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=4)
    _assert_same_shape(SAMPLE / "log", paths.log_root)
    assert _tag_layout(paths.log_root) == _tag_layout(SAMPLE / "log")


def test_fin_quant_matches_genuine_fixture(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=6, scenario="fin_quant")
    _assert_same_shape(QUANT / "log", paths.log_root)
    assert _tag_layout(paths.log_root) == _tag_layout(QUANT / "log")


def test_legacy_matches_genuine_legacy_fixture(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=4, legacy=True)
    _assert_same_shape(LEGACY / "log", paths.log_root)
    assert _tag_layout(paths.log_root) == _tag_layout(LEGACY / "log")
    assert not any(f.read_bytes().startswith(SIGNED_HEADER) for f in paths.log_root.rglob("*.pkl"))
    assert paths.key_file is None and not (paths.root / "artifact_signing.key").exists()
    ws = paths.workspace_root
    assert len(list(ws.glob("*/ret.pkl"))) == 3 and not list(ws.glob("*/ret.parquet"))


def test_hard_names_match_genuine_hard_fixture(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=8, hard=True)
    _assert_same_shape(HARD / "log", paths.log_root)
    names = [n for li in range(8) for n in loop_workspace_ids(li, hard=True)["factors"]]
    assert "动量_5日" in names and any(" " in n for n in names)
    codes = {}
    for li in range(8):
        info = loop_workspace_ids(li, hard=True)
        for name, ws in zip(info["factors"], info["tasks"], strict=True):
            codes.setdefault(name, set()).add((paths.workspace_root / ws / "factor.py").read_text(encoding="utf-8"))
    assert any(len(c) > 1 for c in codes.values()), "some factor name must come back with new code"


def test_workspace_files_match_genuine_sample(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=4)

    def kinds(ws_root: Path) -> set[frozenset[str]]:
        return {frozenset(p.name for p in d.iterdir()) for d in ws_root.iterdir()}

    # the sample's conf_combined_factors_sota_model.yaml is one of the templates; compare the same set of names
    assert kinds(paths.workspace_root) == kinds(SAMPLE / "workspace")


@pytest.mark.parametrize("root", [SAMPLE, LEGACY, HARD])
def test_fixture_panel_links_are_relative_and_resolve(root: Path) -> None:
    links = [p for p in (root / "workspace").glob("*/daily_pv.h5")]
    assert links
    for link in links:
        assert link.is_symlink() and os.readlink(link) == "../../data/daily_pv.h5"
        assert link.resolve() == (root / "data" / "daily_pv.h5").resolve()


def test_generated_panel_links_are_relative(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2)
    links = list(paths.workspace_root.glob("*/daily_pv.h5"))
    assert links and all(os.readlink(p) == "../../data/daily_pv.h5" and p.exists() for p in links)


def test_signatures_verify_with_hmac(tmp_path: Path) -> None:
    key = bytes(range(32))
    paths = write_trace(tmp_path / "t", loops=3, key=key)
    assert paths.key_file is not None and paths.key_file.read_bytes() == key
    files = list(paths.log_root.rglob("*.pkl"))
    assert files and all(verify_signature(f, key) for f in files)
    assert not any(verify_signature(f, b"x" * 32) for f in files)


@pytest.mark.parametrize("root", [SAMPLE, HARD])
def test_genuine_fixture_signatures_verify(root: Path) -> None:
    key = (root / "artifact_signing.key").read_bytes()
    files = list((root / "log").rglob("*.pkl"))
    assert files and all(verify_signature(f, key) for f in files)


def test_unsigned_when_key_is_none(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2, key=None)
    assert paths.key_file is None
    assert not any(f.read_bytes().startswith(SIGNED_HEADER) for f in paths.log_root.rglob("*.pkl"))
    assert list(paths.workspace_root.glob("*/ret.parquet"))


def _pickles_by_relpath(paths: TracePaths) -> dict[str, bytes]:
    return {str(f.relative_to(paths.log_root)): f.read_bytes() for f in paths.log_root.rglob("*.pkl")}


def test_appending_loops_gives_the_same_trace(tmp_path: Path) -> None:
    origin = "/home/quant/RD-Agent/workspace"
    whole = write_trace(tmp_path / "whole", loops=5, origin_root=origin)
    write_trace(tmp_path / "parts", loops=3, fail_last=False, origin_root=origin)
    parts = write_trace(tmp_path / "parts", loops=2, start_loop=3, origin_root=origin)
    assert _pickles_by_relpath(parts) == _pickles_by_relpath(whole)
    names = [sorted(p.name for p in t.workspace_root.iterdir()) for t in (parts, whole)]
    assert names[0] == names[1]


def test_a_loop_written_step_by_step(tmp_path: Path) -> None:
    origin = "/srv/rd/workspace"
    whole = write_trace(tmp_path / "whole", loops=3, fail_last=False, origin_root=origin)
    out = tmp_path / "live"
    write_trace(out, loops=2, fail_last=False, origin_root=origin)
    append_step(out, 2, "direct_exp_gen", origin_root=origin)
    append_step(out, 2, "coding", origin_root=origin)
    live = out
    run = live / "log" / whole.run_dir.name
    assert sorted(p.name for p in (run / "Loop_2").iterdir()) == ["coding", "direct_exp_gen"]
    exp_ws = live / "workspace" / loop_workspace_ids(2)["experiment"]
    assert exp_ws.is_dir() and not (exp_ws / "qlib_res.csv").exists()
    written = append_step(out, 2, "running", origin_root=origin) + append_step(out, 2, "feedback", origin_root=origin)
    assert {p.parent.parent.name for p in written} == {"runner result", "Qlib_execute_log",
                                                       "Quantitative Backtesting Chart", "feedback"}
    assert (exp_ws / "qlib_res.csv").exists()
    whole_b = _pickles_by_relpath(whole)
    live_b = {str(f.relative_to(live / "log")): f.read_bytes() for f in (live / "log").rglob("*.pkl")}
    assert live_b == whole_b


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = write_trace(tmp_path / "a", loops=3, origin_root="/x/workspace", seed=5)
    b = write_trace(tmp_path / "b", loops=3, origin_root="/x/workspace", seed=5)
    c = write_trace(tmp_path / "c", loops=3, origin_root="/x/workspace", seed=6)
    assert _pickles_by_relpath(a) == _pickles_by_relpath(b)
    assert _pickles_by_relpath(a) != _pickles_by_relpath(c)


def _workspace_path_parts(paths: TracePaths) -> set[tuple[str, tuple]]:
    """(pathlib class, parts) of every workspace_path REDUCE in the runner results."""
    found = set()
    for f in paths.log_root.rglob("runner result/*/*.pkl"):
        stack_view = pickle_shape(f.read_bytes()).root
        todo = [stack_view]
        while todo:
            o = todo.pop()
            state = getattr(o, "state", None)
            if isinstance(state, dict):
                wp = state.get("workspace_path")
                if wp is not None:
                    found.add((wp.cls.dotted, tuple(wp.args)))
                todo.extend(state.values())
            elif isinstance(o, list):
                todo.extend(o)
    return found


def test_windows_workspace_paths(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2, workspace_path_style="windows")
    shape = trace_shape(paths.log_root)
    assert "pathlib.WindowsPath" in shape.globals and "pathlib.PosixPath" not in shape.globals
    found = _workspace_path_parts(paths)
    assert found and all(cls == "pathlib.WindowsPath" and parts[0] == "C:\\" for cls, parts in found)
    on_disk = {p.name for p in paths.workspace_root.iterdir()}
    assert {parts[-1] for _, parts in found} <= on_disk


def test_posix_workspace_paths_point_at_the_workspaces(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2)
    found = _workspace_path_parts(paths)
    assert found
    for cls, parts in found:
        assert cls == "pathlib.PosixPath"
        assert Path(*parts).is_dir() and Path(*parts).parent == paths.workspace_root


def test_factor_code_reproduces_result_h5(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=8, hard=True)
    info = loop_workspace_ids(4, hard=True)  # the unicode-named factor
    assert info["factors"] == ["动量_5日"]
    ws = paths.workspace_root / info["tasks"][0]
    expected = pd.read_hdf(ws / "result.h5", key="data")
    (ws / "result.h5").unlink()
    subprocess.run([sys.executable, "factor.py"], cwd=ws, check=True, capture_output=True)
    pd.testing.assert_frame_equal(pd.read_hdf(ws / "result.h5", key="data"), expected)
    assert list(expected.columns) == ["动量_5日"] and expected.notna().any().all()


def test_truncate_and_tamper(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=1, key=b"s" * 32, fail_last=False)
    f1, f2 = sorted(paths.log_root.rglob("runner result/*/*.pkl")) + sorted(paths.log_root.rglob("feedback/*/*.pkl"))
    truncate_pickle(f1)
    with pytest.raises(ValueError):
        list(pickletools.genops(strip_signature(f1.read_bytes())))
    before = f2.read_bytes()
    off = tamper_pickle(f2)
    after = f2.read_bytes()
    assert after.startswith(SIGNED_HEADER) and after[: len(SIGNED_HEADER) + 32] == before[: len(SIGNED_HEADER) + 32]
    assert sum(x != y for x, y in zip(before, after, strict=True)) == 1 and after[off] != before[off]
    assert pickle_shape(after).globals == pickle_shape(before).globals  # still well-formed, same globals
    assert pickle_shape(after).states == pickle_shape(before).states  # and the same attribute keys
    assert not verify_signature(f2, b"s" * 32)


def test_forbidden_pickle_is_signed_and_names_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned marker"
    f = tmp_path / "evil.pkl"
    write_forbidden_pickle(f, b"s" * 32, marker)
    assert verify_signature(f, b"s" * 32)
    shape = pickle_shape(f.read_bytes())
    assert shape.globals == {"os.system"}
    assert shape.root.cls.dotted == "os.system" and "touch" in shape.root.args[0]
    assert str(marker) in shape.root.args[0]
    assert not marker.exists()


def test_workspace_damage_helpers(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2)
    info = loop_workspace_ids(0)
    factor_ws = paths.workspace_root / info["tasks"][0]
    bad = write_non_utf8_code(factor_ws)
    with pytest.raises(UnicodeDecodeError):
        bad.read_bytes().decode("utf-8")
    how = make_unreadable(factor_ws / "result.h5")
    with pytest.raises(OSError):
        (factor_ws / "result.h5").read_bytes()
    assert how in ("chmod", "directory")
    link_target = factor_ws / "factor.py"
    assert make_unreadable(link_target, how="dangling_symlink") == "dangling_symlink"
    with pytest.raises(FileNotFoundError):
        link_target.read_bytes()
    remove_workspace(paths, info["experiment"])
    assert not (paths.workspace_root / info["experiment"]).exists()


def test_thousand_loops(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    paths = write_trace(tmp_path / "big", loops=1000, key=b"b" * 32)
    elapsed = time.perf_counter() - t0
    print(f"\ntracegen: 1,000 fin_factor loops in {elapsed:.1f} s")
    loops = {p.name for p in paths.run_dir.iterdir() if p.name.startswith("Loop_")}
    assert len(loops) == 1000
    assert list((paths.run_dir / "Loop_999" / "feedback").rglob("*.pkl"))
    assert not (paths.run_dir / "Loop_999" / "running").exists()
    assert len(list(paths.run_dir.glob("Loop_*/running/runner result/*/*.pkl"))) == 999
    shutil.rmtree(paths.root)  # ~19,000 files: do not leave them to pytest's tmp retention


def test_stand_ins_and_pandas_patches_do_not_leak(tmp_path: Path) -> None:
    homes = {c: c.__module__ for c in (pd.DataFrame, pd.Series, pd.Index, pd.DatetimeIndex)}
    write_trace(tmp_path / "t", loops=2)
    assert not [m for m in sys.modules if m == "rdagent" or m.startswith("rdagent.")]
    assert {c: c.__module__ for c in homes} == homes


def test_native_pandas_globals_follow_the_installed_pandas(tmp_path: Path) -> None:
    paths = write_trace(tmp_path / "t", loops=2, fail_last=False, pandas_globals="native")
    shape = trace_shape(paths.log_root)
    assert f"{pd.DataFrame.__module__}.DataFrame" in shape.globals
    assert f"{pd.Series.__module__}.Series" in shape.globals
