"""Building one loop's document set (file name -> bytes) from its registry data and its workspaces.

Pure reading: nothing here writes. Missing or malformed input raises `LoopInputError` naming the file; optional input
(a factor workspace without result.h5, no daily_pv.h5 for forward returns) is noted in the documents instead.
JSON is written with sorted structure from pydantic models, two-space indent, UTF-8, so equal input gives equal bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rdbridge.contracts.artifacts import (
    FactorMeta,
    FactorMetaRecord,
    FactorPerf,
    FactorStats,
    FeedbackDoc,
    InterfaceInfo,
    KeyMetrics,
    Manifest,
    ModelMeta,
    ModelTaskMeta,
    StrategyDoc,
    Summary,
    SummaryFactor,
)
from rdbridge.materialize import charts, conf, factor_stats, hdf, report
from rdbridge.materialize.errors import LoopInputError
from rdbridge.materialize.gather import LoopData, TaskData
from rdbridge.materialize.store import MANIFEST, file_entry
from rdbridge.registry import factor_id_for

_FIELD = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_KEY_METRICS = {
    "ic": "IC", "icir": "ICIR", "rank_ic": "Rank IC", "rank_icir": "Rank ICIR",
    "annualized_return_with_cost": "1day.excess_return_with_cost.annualized_return",
    "information_ratio_with_cost": "1day.excess_return_with_cost.information_ratio",
    "max_drawdown_with_cost": "1day.excess_return_with_cost.max_drawdown",
    "annualized_return_without_cost": "1day.excess_return_without_cost.annualized_return",
    "information_ratio_without_cost": "1day.excess_return_without_cost.information_ratio",
    "max_drawdown_without_cost": "1day.excess_return_without_cost.max_drawdown",
}


def to_json(doc: BaseModel) -> bytes:
    return (doc.model_dump_json(indent=2) + "\n").encode("utf-8")


def key_metrics(metrics: dict[str, float]) -> KeyMetrics:
    return KeyMetrics(**{k: metrics.get(q) for k, q in _KEY_METRICS.items()})


def _impl_pointers(factor_row: dict[str, Any] | None) -> dict[str, str | None]:
    """impl_module / impl_func / impl_version of a factor, from its `factors` row.

    The factorlib promotion fills these columns (migration 0002); on a registry without them they stay None.
    """
    row = factor_row or {}
    return {k: row.get(k) for k in ("impl_module", "impl_func", "impl_version")}


# ------------------------------------------------------------------------------------------------ workspaces


def _ws_dir(loop: LoopData, workspace_id: str | None) -> Path | None:
    if not workspace_id:
        return None
    w = loop.workspaces.get(workspace_id)
    if w is None or not w.exists or not w.path:
        return None
    p = Path(w.path)
    return p if p.is_dir() else None


def _missing_ws(loop: LoopData, workspace_id: str | None, what: str) -> LoopInputError:
    root = loop.workspace_root or "<workspace root>"
    return LoopInputError(Path(root) / (workspace_id or "?"), f"missing {what} workspace")


def _factor_code(ws: Path | None) -> str | None:
    if ws is None or not (ws / "factor.py").is_file() or (ws / "factor.py").is_symlink():
        return None
    try:
        return (ws / "factor.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LoopInputError(ws / "factor.py", f"cannot read factor code ({type(e).__name__})") from None


class FactorRef:
    """One factor task of the loop with what its workspace says about it."""

    def __init__(self, loop: LoopData, task: TaskData) -> None:
        self.task = task
        self.ws = _ws_dir(loop, task.workspace_id)
        self.code = _factor_code(self.ws)
        self.factor_id = factor_id_for(task.name, self.code) if self.code is not None else None
        self.code_sha256 = hashlib.sha256(self.code.encode("utf-8")).hexdigest() if self.code is not None else None
        self.row = loop.factor_rows.get(self.factor_id) if self.factor_id else None


def factor_refs(loop: LoopData) -> list[FactorRef]:
    return [FactorRef(loop, t) for t in loop.tasks if t.task_type == "factor"]


# ------------------------------------------------------------------------------------------------ daily_pv


_FWD_CACHE: dict[tuple[str, int, int], Any] = {}


def _trusted_root(loop: LoopData) -> Path | None:
    return Path(os.path.realpath(loop.workspace_root)).parent if loop.workspace_root else None


def find_daily_pv(loop: LoopData, refs: list[FactorRef]) -> Path | None:
    """The input panel: a factor workspace's daily_pv.h5 (a link RD-Agent made; followed only inside the trace),
    else `<workspace root>/../data/daily_pv.h5`."""
    trusted = _trusted_root(loop)
    if trusted is None:
        return None
    candidates = [r.ws / "daily_pv.h5" for r in refs if r.ws is not None]
    candidates.append(Path(loop.workspace_root or ".").parent / "data" / "daily_pv.h5")
    for c in candidates:
        real = Path(os.path.realpath(c))
        if real.is_file() and real.is_relative_to(trusted):
            return real
    return None


def forward_returns_for(path: Path) -> Any:
    """Forward returns of one input panel, computed once per process per file version (loops of a run share it)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FWD_CACHE:
        panel = hdf.read_panel(path, "input panel (daily_pv.h5)")
        close = panel.numeric(panel.labels.index("$close")) if "$close" in panel.labels else None
        if close is None:
            raise LoopInputError(path, f"input panel has no numeric $close column (has {panel.labels[:8]})")
        fwd = factor_stats.forward_returns(panel.datetime, panel.instrument, close)
        if len(_FWD_CACHE) >= 4:
            _FWD_CACHE.clear()
        _FWD_CACHE[key] = fwd
    return _FWD_CACHE[key]


# ------------------------------------------------------------------------------------------------ documents


def _region(exp_conf: dict[str, Any] | None) -> str | None:
    r = conf.dig(exp_conf, "qlib_init", "region")
    return str(r) if r is not None else None


def factor_meta(loop: LoopData, refs: list[FactorRef], exp_conf: dict[str, Any] | None) -> FactorMeta:
    tags = [t for t in (loop.scenario, f"action:{loop.action}") if t]
    records = []
    for r in refs:
        t = r.task
        records.append(FactorMetaRecord(
            name=t.name, factor_id=r.factor_id, description=t.description, formula_hint=t.formulation,
            variables=t.variables, tags=tags, region=_region(exp_conf),
            interface_info=InterfaceInfo(input_fields=sorted(set(_FIELD.findall(r.code or "")))),
            experiment_id=loop.experiment_id, created_at_utc=(r.row or {}).get("created_at_utc"),
            code_sha256=r.code_sha256, workspace_id=t.workspace_id, **_impl_pointers(r.row)))
    return FactorMeta(experiment_id=loop.experiment_id, factors=records)


def _one_factor(r: FactorRef, fwd: Any) -> FactorStats:
    if r.ws is None or not (r.ws / "result.h5").exists():
        return FactorStats(name=r.task.name, factor_id=r.factor_id, status="no_result",
                           note="the factor workspace has no result.h5 (the factor did not run)")
    path = r.ws / "result.h5"
    panel = hdf.read_panel(path, "factor result")
    if not panel.labels:
        raise LoopInputError(path, "factor result has no column")
    i = panel.labels.index(r.task.name) if r.task.name in panel.labels else 0
    values = panel.numeric(i)
    if values is None:
        raise LoopInputError(path, f"factor column {str(panel.labels[i])[:60]!r} is {panel.columns[i].dtype}, "
                                   "not numeric")
    return factor_stats.factor_stats(r.task.name, r.factor_id, panel.datetime, panel.instrument, values, fwd)


def factor_perf(loop: LoopData, refs: list[FactorRef]) -> FactorPerf:
    pv = find_daily_pv(loop, refs)
    fwd = forward_returns_for(pv) if pv is not None else None
    return FactorPerf(experiment_id=loop.experiment_id, metrics=loop.metrics, metrics_source=loop.metrics_source,
                      key_metrics=key_metrics(loop.metrics), forward_return=factor_stats.FORWARD_RETURN,
                      quantiles=factor_stats.QUANTILES, factors=[_one_factor(r, fwd) for r in refs])


def feedback(loop: LoopData) -> FeedbackDoc:
    fb, hyp = loop.feedback_json, loop.hypothesis_json
    return FeedbackDoc(
        experiment_id=loop.experiment_id, decision=loop.decision, reason=fb.get("reason"),
        observations=fb.get("observations"), hypothesis_evaluation=fb.get("hypothesis_evaluation"),
        new_hypothesis=fb.get("new_hypothesis"), code_change_summary=fb.get("code_change_summary"),
        exception=fb.get("exception"), hypothesis=loop.hypothesis,
        justification=hyp.get("concise_justification") or hyp.get("reason"),
        action=hyp.get("action") or (loop.action if loop.scenario == "fin_quant" else None))


def _render_vars(loop: LoopData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in loop.tasks:
        if t.task_type == "model":
            out.update(t.training_hyperparameters)
    return out


def _parquet_columns(path: Path) -> list[str]:
    if not path.is_file():
        return []
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001
        raise LoopInputError(path, f"not a readable parquet file ({type(e).__name__})") from None
    out = []
    for n in names:
        if n.startswith("__index_level") or n in ("datetime", "instrument"):
            continue
        m = re.fullmatch(r"\('feature', '(.*)'\)", n)  # pandas' flattened ('feature', name) column
        out.append(m.group(1) if m else n)
    return out


def model_meta(loop: LoopData, exp_ws: Path | None, conf_path: Path | None, doc: dict[str, Any] | None) -> ModelMeta:
    model = conf.dig(doc, "task", "model") or {}
    ds = conf.dig(doc, "task", "dataset") or {}
    handler = conf.dig(ds, "kwargs", "handler") or {}
    loaders = conf.dig(handler, "kwargs", "data_loader", "kwargs", "dataloader_l") or []
    label = conf.dig(handler, "kwargs", "data_loader", "kwargs", "dataloader_l")
    labels: list[str] = []
    for dl in label if isinstance(label, list) else []:
        lab = conf.dig(dl, "kwargs", "config", "label")
        if isinstance(lab, list) and lab and isinstance(lab[0], list):
            labels = [str(x) for x in lab[0]]
    segments = conf.dig(ds, "kwargs", "segments") or {}
    tasks = [ModelTaskMeta(name=t.name, description=t.description, architecture=t.architecture,
                           model_type=t.model_type, hyperparameters=t.hyperparameters,
                           training_hyperparameters=t.training_hyperparameters, workspace_id=t.workspace_id)
             for t in loop.tasks if t.task_type == "model"]
    return ModelMeta(
        experiment_id=loop.experiment_id, config_file=conf_path.name if conf_path else None,
        model_class=model.get("class"), model_module=model.get("module_path"),
        model_kwargs=model.get("kwargs") or {}, dataset_class=ds.get("class"), handler_class=handler.get("class"),
        segments={str(k): list(v) if isinstance(v, list) else [v] for k, v in segments.items()},
        data_loaders=[str(d.get("class")) for d in loaders if isinstance(d, dict)], label=labels,
        features=_parquet_columns(exp_ws / "combined_factors_df.parquet") if exp_ws else [], tasks=tasks)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def strategy(loop: LoopData, conf_path: Path, doc: dict[str, Any]) -> StrategyDoc:
    pac = doc.get("port_analysis_config")
    if not isinstance(pac, dict):
        for rec in conf.dig(doc, "task", "record") or []:
            if isinstance(rec, dict) and rec.get("class") == "PortAnaRecord":
                pac = conf.dig(rec, "kwargs", "config")
    if not isinstance(pac, dict):
        raise LoopInputError(conf_path, "no port_analysis_config (strategy and backtest) in the config")
    st, bt = pac.get("strategy") or {}, pac.get("backtest") or {}
    kw, ex = st.get("kwargs") or {}, bt.get("exchange_kwargs") or {}
    return StrategyDoc(
        experiment_id=loop.experiment_id, config_file=conf_path.name, strategy_class=st.get("class"),
        strategy_module=st.get("module_path"), topk=kw.get("topk"), n_drop=kw.get("n_drop"),
        benchmark=None if bt.get("benchmark") is None else str(bt.get("benchmark")),
        market=None if doc.get("market") is None else str(doc.get("market")), account=_num(bt.get("account")),
        open_cost=_num(ex.get("open_cost")), close_cost=_num(ex.get("close_cost")), min_cost=_num(ex.get("min_cost")),
        limit_threshold=_num(ex.get("limit_threshold")),
        deal_price=None if ex.get("deal_price") is None else str(ex.get("deal_price")),
        backtest_start=None if bt.get("start_time") is None else str(bt.get("start_time")),
        backtest_end=None if bt.get("end_time") is None else str(bt.get("end_time")))


def summary(loop: LoopData, refs: list[FactorRef], names: list[str]) -> Summary:
    return Summary(
        experiment_id=loop.experiment_id, task_run_id=loop.task_run_id, loop_id=loop.loop_id, scenario=loop.scenario,
        action=loop.action, status=loop.status, decision=loop.decision, hypothesis=loop.hypothesis,
        has_result=loop.has_result, key_metrics=key_metrics(loop.metrics) if loop.has_result else None,
        factors=[SummaryFactor(name=r.task.name, factor_id=r.factor_id) for r in refs],
        models=[t.name for t in loop.tasks if t.task_type == "model"], best_workspace_id=loop.best_workspace_id,
        experiment_workspace_id=loop.experiment_workspace_id, started_at_utc=loop.started_at_utc,
        source_fingerprint=loop.trace_fingerprint, documents=sorted(names))


def manifest(loop: LoopData, files: dict[str, bytes]) -> Manifest:
    return Manifest(experiment_id=loop.experiment_id, source_fingerprint=loop.trace_fingerprint,
                    files=[file_entry(n, files[n]) for n in sorted(files) if n != MANIFEST])


# ------------------------------------------------------------------------------------------------ the set


def _experiment_conf(loop: LoopData, exp_ws: Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    if exp_ws is None:
        return None, None
    path = conf.pick_conf(exp_ws, loop.action)
    return (path, conf.load_conf(path, _render_vars(loop))) if path is not None else (None, None)


def build_set(loop: LoopData) -> dict[str, bytes]:
    """Every file of the loop's set, manifest included (last)."""
    refs = factor_refs(loop)
    exp_ws = _ws_dir(loop, loop.experiment_workspace_id)
    files: dict[str, bytes] = {}
    if loop.has_result and exp_ws is None:
        raise _missing_ws(loop, loop.experiment_workspace_id, "experiment")
    conf_path, exp_conf = _experiment_conf(loop, exp_ws)
    files["factor_meta.json"] = to_json(factor_meta(loop, refs, exp_conf))
    files["feedback.json"] = to_json(feedback(loop))
    if loop.action == "model" or any(t.task_type == "model" for t in loop.tasks):
        files["model_meta.json"] = to_json(model_meta(loop, exp_ws, conf_path, exp_conf))
    if loop.has_result:
        assert exp_ws is not None
        if conf_path is None or exp_conf is None:
            raise LoopInputError(exp_ws / "conf_combined_factors.yaml", "missing Qlib config (no conf*.yaml)")
        files["strategy.json"] = to_json(strategy(loop, conf_path, exp_conf))
        files["factor_perf.json"] = to_json(factor_perf(loop, refs))
        rpath = report.find_report(exp_ws)
        if rpath is None:
            raise LoopInputError(exp_ws / "ret.parquet", "missing portfolio report (neither ret.parquet nor ret.pkl)")
        rep = report.read_report(rpath)
        files["ret_curve.png"], files["dd_curve.png"] = charts.curve_pngs(rep, loop.experiment_id)
    files["summary.json"] = to_json(summary(loop, refs, [*files, MANIFEST]))
    files[MANIFEST] = to_json(manifest(loop, files))
    return files
