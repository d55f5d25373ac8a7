"""Each kind of missing or malformed input fails its loop with an error naming the file; the other loops are done."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from rdbridge.contracts.artifacts import FactorPerf
from rdbridge.materialize import materialize
from rdbridge.registry import Task, make_engine, session_scope

from .conftest import FIXTURES, SAMPLE, Ingested, check_store_matches_registry, ingest_copy, loops


class _RunsShell:
    """Pickles as a call to os.system: what a hostile file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def _exp_ws(t: Ingested, loop_id: int) -> Path:
    lp = next(lp for lp in loops(t.db_url) if lp.loop_id == loop_id)
    return t.root / "workspace" / lp.experiment_workspace_id


def _factor_ws(t: Ingested, loop_id: int) -> Path:
    engine = make_engine(t.db_url)
    try:
        with session_scope(engine, write=False) as s:
            ws = s.scalar(select(Task.workspace_id).where(Task.loop_id == loop_id, Task.task_index == 0))
    finally:
        engine.dispose()
    return t.root / "workspace" / ws


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00garbage, not this format\x00" * 10)


def _wrong_index(p: Path) -> None:
    pd.DataFrame({"x": [1.0, 2.0]}).to_hdf(p, key="data")


def _no_return_column(p: Path) -> None:
    pd.DataFrame({"account": [1.0]}, index=pd.DatetimeIndex(["2021-01-04"], name="datetime")).to_parquet(p)


def _bad_yaml(p: Path) -> None:
    p.write_text("task: [unclosed\n  model: {\n", encoding="utf-8")


# (what to break, in which loop, the file name the error must contain)
CASES: dict[str, tuple[Callable[[Ingested], Path], Callable[[Path], None] | None, int]] = {
    "corrupt ret.parquet": (lambda t: _exp_ws(t, 1) / "ret.parquet", _garbage, 1),
    "ret.parquet without return column": (lambda t: _exp_ws(t, 1) / "ret.parquet", _no_return_column, 1),
    "missing ret.parquet": (lambda t: _exp_ws(t, 1) / "ret.parquet", None, 1),
    "corrupt result.h5": (lambda t: _factor_ws(t, 0) / "result.h5", _garbage, 0),
    "result.h5 without (datetime, instrument) index": (lambda t: _factor_ws(t, 0) / "result.h5", _wrong_index, 0),
    "conf yaml not YAML": (lambda t: _exp_ws(t, 2) / "conf_combined_factors.yaml", _bad_yaml, 2),
    "missing experiment workspace": (lambda t: _exp_ws(t, 2), None, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_only_its_loop(case: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(SAMPLE, tmp_path, url)
    where, damage, bad_loop = CASES[case]
    target = where(t)
    if damage is None:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    else:
        damage(target)
    report = materialize(db_url=url, root=t.store)
    assert (report.counts.done, report.counts.failed) == (3, 1), report
    (failure,) = report.failures
    assert failure.experiment_id.endswith(f"/{bad_loop}") and target.name in failure.error, failure.error
    by_id = {lp.loop_id: lp for lp in loops(url)}
    assert by_id[bad_loop].materialization_status == "failed"
    assert target.name in (by_id[bad_loop].materialization_error or "")
    assert all(lp.materialization_status == "done" for i, lp in by_id.items() if i != bad_loop)
    assert not (t.store / by_id[bad_loop].task_run_id / str(bad_loop) / "manifest.json").exists()
    check_store_matches_registry(url, t.store)


def test_corrupt_daily_pv_fails_the_loops_that_need_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(SAMPLE, tmp_path, url)
    _garbage(t.root / "data" / "daily_pv.h5")
    report = materialize(db_url=url, root=t.store)
    assert report.counts.failed == 3 and all("daily_pv.h5" in f.error for f in report.failures)
    assert {lp.loop_id for lp in loops(url) if lp.materialization_status == "done"} == {3}, "no result: no panel"


def test_missing_result_h5_is_noted_not_fatal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(SAMPLE, tmp_path, url)
    (_factor_ws(t, 0) / "result.h5").unlink()
    assert materialize(db_url=url, root=t.store).ok
    run = loops(url)[0].task_run_id
    perf = FactorPerf.model_validate_json((t.store / run / "0" / "factor_perf.json").read_bytes())
    assert perf.factors[0].status == "no_result" and perf.factors[0].ic is None


def test_hostile_ret_pkl_is_refused_and_never_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(FIXTURES / "rdagent_legacy_fin_factor_trace", tmp_path, url)
    marker = tmp_path / "pwned"
    pkl = _exp_ws(t, 0) / "ret.pkl"
    pkl.write_bytes(pickle.dumps(_RunsShell(marker)))
    report = materialize(db_url=url, root=t.store)
    assert not marker.exists(), "the pickle ran"
    (failure,) = report.failures
    assert failure.experiment_id.endswith("/0") and "ret.pkl" in failure.error and "system" in failure.error


def test_truncated_ret_pkl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(FIXTURES / "rdagent_legacy_fin_factor_trace", tmp_path, url)
    pkl = _exp_ws(t, 1) / "ret.pkl"
    pkl.write_bytes(pkl.read_bytes()[: pkl.stat().st_size // 2])
    report = materialize(db_url=url, root=t.store)
    (failure,) = report.failures
    assert failure.experiment_id.endswith("/1") and "ret.pkl" in failure.error


def test_hdf5_attribute_pickle_never_runs(tmp_path: Path) -> None:
    """PyTables unpickles attribute values; a crafted result.h5 must not run code when its stats are computed."""
    import tables

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(SAMPLE, tmp_path, url)
    marker = tmp_path / "pwned"
    h5 = _factor_ws(t, 0) / "result.h5"
    with tables.open_file(h5, mode="a") as f:
        f.get_node("/data")._v_attrs.pandas_type = _RunsShell(marker)  # stored pickled by PyTables
    report = materialize(db_url=url, root=t.store)
    assert not marker.exists(), "an HDF5 attribute pickle ran"
    assert [f.experiment_id.rsplit("/", 1)[1] for f in report.failures] == ["0"]
    assert "result.h5" in report.failures[0].error
