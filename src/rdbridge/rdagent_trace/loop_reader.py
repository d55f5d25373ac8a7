"""Interpret one RD-Agent loop (its trace pickles plus workspaces) as a `LoopSnapshot`.

What RD-Agent (1.0, `RDLoop` / `QuantRDLoop`) logs per loop, and what we take from it:

  direct_exp_gen/hypothesis generation   Hypothesis (QlibQuantHypothesis in fin_quant, with `action`)
  direct_exp_gen/experiment generation   list of FactorTask / ModelTask
  coding/<evo_loop_i>/evolving code      list of workspaces per CoSTEER round (we use the latest)
  coding/coder result                    list of workspaces (RDLoop) or the whole experiment (QuantRDLoop)
  running/runner result                  the experiment after the Qlib backtest: `running_info.result` is the metrics
  feedback/feedback                      HypothesisFeedback

Status. RD-Agent's loop catches its `skip_loop_error`s (FactorEmptyError, ModelEmptyError, CoderError) raised in
coding or running, jumps straight to the feedback step and logs a HypothesisFeedback carrying the error text
(`reason` in RDLoop, `observations` in QuantRDLoop) with decision False; no `runner result` is logged. So:
  * no feedback yet                                  -> "running" (the loop is in progress, or the run died in it)
  * feedback and a runner result                     -> "completed"  (unless the feedback records an `exception`)
  * feedback without a runner result (or exception)  -> "failed"
Any other error aborts RD-Agent's loop without a feedback, so such a loop stays "running" here; `updated_at_utc`
lets the caller decide when a silent loop is stale.

Every unreadable file becomes a `TraceFileError` in `errors`; the loop keeps every other fact.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from rdbridge.contracts.trace import (
    FactorTaskInfo,
    FeedbackInfo,
    HypothesisInfo,
    LoopSnapshot,
    ModelTaskInfo,
    RunSnapshot,
    SignatureStatus,
    TaskInfo,
    TraceFileError,
    WorkspaceInfo,
)
from rdbridge.rdagent_trace.errors import BadFormatError, MissingWorkspaceError, TraceReadError, UnreadableFileError
from rdbridge.rdagent_trace.files import default_max_pickle_bytes, read_regular
from rdbridge.rdagent_trace.progress import note_file
from rdbridge.rdagent_trace.safe_unpickle import RdagentRecord, is_record, safe_loads
from rdbridge.rdagent_trace.signed import verify_envelope
from rdbridge.rdagent_trace.walker import LoopScan, TraceEntry, run_started_at, scan_run
from rdbridge.rdagent_trace.workspace import describe_workspace, read_qlib_res, resolve_workspace

__all__ = ["ReadOptions", "read_loop", "read_run", "read_run_loops", "run_facts", "infer_scenario", "safe_text"]


@dataclass(frozen=True)
class ReadOptions:
    """Limits of one read: the trace-pickle size cap and the extra folders a symbolic link may point into
    (`--data-root`, e.g. RD-Agent's data folder that `daily_pv.h5` links to)."""

    max_pickle_bytes: int = field(default_factory=default_max_pickle_bytes)
    data_roots: tuple[Path, ...] = ()

TAG_HYPOTHESIS = "hypothesis generation"
TAG_EXPERIMENT = "experiment generation"
TAG_EVOLVING = "evolving code"
TAG_CODER = "coder result"
TAG_RUNNER = "runner result"
TAG_FEEDBACK = "feedback"
_INTERPRETED = (TAG_HYPOTHESIS, TAG_EXPERIMENT, TAG_EVOLVING, TAG_CODER, TAG_RUNNER, TAG_FEEDBACK)

_SIGNATURE_RANK: dict[str, int] = {"verified": 0, "unverified": 1, "unsigned": 2, "tampered": 3}
_EXPERIMENT_CLASSES = ("QlibFactorExperiment", "QlibModelExperiment", "Experiment", "QlibQuantExperiment")


# --------------------------------------------------------------------------------------------------------------------
# small converters


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 6, 200, 200, 200, 200
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 20_000, 20_000, 400
_MAX_TEXT = 200_000


def safe_text(v: Any, depth: int = 0) -> str:
    """Text of any rebuilt value, bounded in depth and length: a value nested a million deep (or one whose `str`
    fails) gives a placeholder instead of a RecursionError that would cost the loop its facts."""
    try:
        if isinstance(v, str):
            return v[:_MAX_TEXT]
        if isinstance(v, BaseException):
            if depth > 4:
                return type(v).__name__
            args = ", ".join(safe_text(a, depth + 1) for a in v.args[:8])
            return f"{type(v).__name__}: {args}"[:_MAX_TEXT]
        if isinstance(v, (list, tuple, dict, set, frozenset)):
            return _REPR.repr(v)[:_MAX_TEXT]
        return str(v)[:_MAX_TEXT]
    except RecursionError:
        return f"<{type(v).__name__} nested too deeply to show>"
    except Exception as e:  # noqa: BLE001 - a rebuilt object whose str() fails: show what it is instead
        return f"<{type(v).__name__}: not showable ({type(e).__name__})>"


MAX_NESTING = 100


def check_nesting(v: Any, what: str, limit: int = MAX_NESTING) -> None:
    """`BadFormatError` when a value nests deeper than `limit` (iterative walk: never recursion itself). RD-Agent's
    fields are flat; a deeply nested one is damage or an attack, and costs only its own file's facts."""
    stack: list[tuple[Any, int]] = [(v, 0)]
    seen = 0
    while stack:
        x, d = stack.pop()
        if d > limit:
            raise BadFormatError(what, f"value nests more than {limit} levels deep; not used")
        seen += 1
        if seen > 1_000_000:
            raise BadFormatError(what, "value holds more than a million parts; not used")
        if isinstance(x, dict):
            stack.extend((y, d + 1) for y in x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend((y, d + 1) for y in x)


def _jsonable(v: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of task attributes the LLM filled (they are persisted and served as JSON later)."""
    if depth > 8:
        return safe_text(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x, depth + 1) for x in v]
    if isinstance(v, PurePath):
        return str(v)
    try:  # numpy scalars
        import numpy as np

        if isinstance(v, np.generic):
            return _jsonable(v.item(), depth + 1)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return safe_text(v)


def _as_dict(v: Any) -> dict[str, Any]:
    """Task parameter dicts; some RD-Agent versions / LLM outputs give a JSON string instead of a dict."""
    if v is None:
        return {}
    check_nesting(v, "task parameters")
    if isinstance(v, dict):
        return _jsonable(v)
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            return {"raw": v} if v.strip() else {}
        return _jsonable(parsed) if isinstance(parsed, dict) else {"raw": v}
    return {"raw": _jsonable(v)}


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    check_nesting(v, "text field")
    if isinstance(v, RdagentRecord):  # e.g. an RD-Agent exception pickled as a record
        args = v.get("__args__") or v.get("args")
        return f"{v.class_name}: {safe_text(args[0])}" if isinstance(args, (list, tuple)) and args else v.class_name
    return safe_text(v)


def _opt_bool(v: Any) -> bool | None:
    if v is None:
        return None
    try:
        import numpy as np

        if isinstance(v, np.bool_):
            return bool(v)
    except ImportError:  # pragma: no cover
        pass
    return v if isinstance(v, bool) else None


def _metrics_from_result(result: Any) -> dict[str, float] | None:
    """RD-Agent's experiment result: a pandas Series of Qlib metrics (older versions: a one-column DataFrame)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return None
    if isinstance(result, pd.DataFrame) and result.shape[1] == 1:
        result = result.iloc[:, 0]
    if isinstance(result, pd.Series):
        items: Iterable[tuple[Any, Any]] = result.items()
    elif isinstance(result, dict):
        items = result.items()
    else:
        return None
    out: dict[str, float] = {}
    for k, v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out or None


# --------------------------------------------------------------------------------------------------------------------
# objects -> contract


def _hypothesis(rec: Any) -> HypothesisInfo | None:
    if not isinstance(rec, RdagentRecord):
        return None
    fields = ("hypothesis", "reason", "concise_reason", "concise_observation", "concise_justification",
              "concise_knowledge", "action")
    return HypothesisInfo(**{f: _opt_str(rec.get(f)) for f in fields})


def _task(rec: Any) -> TaskInfo | None:
    if not isinstance(rec, RdagentRecord):
        return None
    if rec.class_name == "FactorTask" or rec.get("factor_name") is not None:
        name = rec.get("factor_name") or rec.get("name")
        if name is None:
            return None
        return FactorTaskInfo(factor_name=str(name),
                              factor_description=_opt_str(rec.get("factor_description") or rec.get("description")),
                              factor_formulation=_opt_str(rec.get("factor_formulation")),
                              variables=_as_dict(rec.get("variables")))
    if rec.class_name == "ModelTask" or rec.get("architecture") is not None:
        name = rec.get("name")
        if name is None:
            return None
        return ModelTaskInfo(name=str(name), description=_opt_str(rec.get("description")),
                             architecture=_opt_str(rec.get("architecture")),
                             hyperparameters=_as_dict(rec.get("hyperparameters")),
                             training_hyperparameters=_as_dict(rec.get("training_hyperparameters")),
                             model_type=_opt_str(rec.get("model_type")), formulation=_opt_str(rec.get("formulation")),
                             variables=_as_dict(rec.get("variables")))
    return None


def _feedback(rec: Any) -> FeedbackInfo | None:
    if not isinstance(rec, RdagentRecord):
        return None
    return FeedbackInfo(decision=_opt_bool(rec.get("decision")), reason=_opt_str(rec.get("reason")),
                        observations=_opt_str(rec.get("observations")),
                        hypothesis_evaluation=_opt_str(rec.get("hypothesis_evaluation")),
                        new_hypothesis=_opt_str(rec.get("new_hypothesis")),
                        code_change_summary=_opt_str(rec.get("code_change_summary")),
                        acceptable=_opt_bool(rec.get("acceptable")), exception=_opt_str(rec.get("exception")))


def _task_name(t: TaskInfo | RdagentRecord | None) -> str | None:
    if isinstance(t, FactorTaskInfo):
        return t.factor_name
    if isinstance(t, ModelTaskInfo):
        return t.name
    if isinstance(t, RdagentRecord):
        n = t.get("factor_name") or t.get("name")
        return str(n) if n is not None else None
    return None


def _is_experiment(obj: Any) -> bool:
    return isinstance(obj, RdagentRecord) and (obj.class_name in _EXPERIMENT_CLASSES or
                                               ("sub_workspace_list" in obj.attrs and "sub_tasks" in obj.attrs))


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else []


# --------------------------------------------------------------------------------------------------------------------
# the loop


class _LoopFiles:
    """Reads the loop's files one at a time (only one payload in memory), keeping signature statuses and errors.

    `skip` maps files a previous attempt could not survive (the isolated worker crashed or timed out on them) to
    their error: they are not opened again.
    """

    def __init__(self, entries: list[TraceEntry], key: bytes | None, *, options: ReadOptions,
                 trusted: tuple[Path, ...], skip: dict[str, TraceFileError] | None = None) -> None:
        self.entries = entries
        self.key = key
        self.options = options
        self.trusted = trusted
        self.skip = skip or {}
        self.statuses: list[str] = []
        self.errors: list[TraceFileError] = []
        self._seen: set[Path] = set()

    def check_all(self) -> None:
        for e in self.entries:
            if e.path not in self._seen:
                self._payload(e)

    def fail(self, e: TraceEntry | None, err: TraceReadError | Exception) -> None:
        """Record a failure of one file (its facts are dropped; the loop keeps the rest)."""
        if isinstance(err, TraceReadError):
            if e is not None and not err.path.endswith(".pkl"):  # raised on a value: name the file it came from
                err = type(err)(e.path, f"{err.path}: {err.message}") if type(err) is not TraceReadError else err
            self.errors.append(err.to_contract())
        else:
            path = e.path if e is not None else Path("<loop>")
            self.errors.append(UnreadableFileError(path, f"cannot interpret ({type(err).__name__}: "
                                                         f"{safe_text(err)[:300]})").to_contract())

    def _payload(self, e: TraceEntry) -> bytes | None:
        self._seen.add(e.path)
        skipped = self.skip.get(str(e.path))
        if skipped is not None:
            self.errors.append(skipped)
            return None
        note_file(e.path)
        try:
            data = read_regular(e.path, self.options.max_pickle_bytes, self.trusted)
            payload, status = verify_envelope(data, self.key, source=e.path)
            self.statuses.append(status)
        except TraceReadError as err:
            if err.kind == "tampered":
                self.statuses.append("tampered")
            self.errors.append(err.to_contract())
            return None
        return payload

    def load(self, e: TraceEntry | None) -> Any:
        """The unpickled object of an entry, or None (error recorded) when it cannot be read."""
        if e is None or e.path in self._seen:
            return None
        payload = self._payload(e)
        if payload is None:
            return None
        try:
            return safe_loads(payload, source=e.path)
        except TraceReadError as err:
            self.errors.append(err.to_contract())
            return None

    def interpret(self, e: TraceEntry | None, func: Callable[..., Any], *args: Any) -> Any:
        """`func(*args)` on objects of file `e`; any failure drops only that file's facts (recorded on it)."""
        try:
            return func(*args)
        except Exception as err:  # noqa: BLE001 - an object shaped in a way we did not foresee
            self.fail(e, err)
            return None
        except RecursionError as err:  # pragma: no cover - subclass of Exception; kept explicit for readers
            self.fail(e, err)
            return None

    @property
    def signature(self) -> SignatureStatus:
        if not self.statuses:
            return "unsigned"
        return max(self.statuses, key=lambda s: _SIGNATURE_RANK[s])  # type: ignore[return-value]


def _latest(entries: list[TraceEntry], tag: str) -> TraceEntry | None:
    found = [e for e in entries if e.tag == tag]
    return max(found, key=lambda e: e.sort_key) if found else None


def _workspace_infos(sub_workspaces: list[Any], experiment_ws: Any, tasks: list[TaskInfo], *, workspace_root: Path,
                     expect_experiment_ws: bool, data_roots: tuple[Path, ...] = (),
                     skip: dict[str, TraceFileError] | None = None) -> tuple[list[WorkspaceInfo], str | None, list[TraceFileError]]:
    infos: list[WorkspaceInfo] = []
    errors: list[TraceFileError] = []
    seen: set[str] = set()
    names = [_task_name(t) for t in tasks]

    def add(ws: RdagentRecord, task_index: int | None, expected: bool) -> str | None:
        recorded = ws.get("workspace_path")
        if recorded is None:
            return None
        wid, ws_dir = resolve_workspace(recorded, workspace_root)
        if wid is None:
            errors.append(BadFormatError(safe_text(recorded)[:300], "recorded workspace path has no usable folder "
                                                                     "name; skipped").to_contract())
            return None
        if wid in seen:
            return wid
        seen.add(wid)
        if ws_dir is None and expected:
            errors.append(MissingWorkspaceError(
                Path(workspace_root) / wid,
                f"workspace {wid} (recorded as {safe_text(recorded)[:300]}) is not under the workspace root "
                f"{workspace_root}; copy RD-Agent's workspace folder here or pass --workspace-root").to_contract())
        if ws_dir is not None and skip and str(ws_dir) in skip:  # the reader died on this folder before
            errors.append(skip[str(ws_dir)])
            ws_dir = None
        if ws_dir is not None:
            note_file(ws_dir)
        file_dict = ws.get("file_dict")
        try:
            info, errs = describe_workspace(ws_dir, workspace_root=workspace_root, recorded_path=safe_text(recorded),
                                            workspace_id=wid, class_name=ws.class_name, task_index=task_index,
                                            file_dict=file_dict if isinstance(file_dict, dict) else None,
                                            data_roots=data_roots)
        except Exception as e:  # noqa: BLE001 - one odd workspace drops only its own facts
            errors.append(UnreadableFileError(ws_dir or Path(workspace_root) / wid,
                                              f"cannot describe workspace ({type(e).__name__}: "
                                              f"{safe_text(e)[:300]})").to_contract())
            return wid
        infos.append(info)
        errors.extend(e.to_contract() for e in errs)
        return wid

    for pos, ws in enumerate(sub_workspaces):
        if not isinstance(ws, RdagentRecord):  # CoSTEER leaves None for a task it could not implement
            continue
        tname = _task_name(ws.get("target_task"))
        idx: int | None = None
        if tname is not None and names.count(tname) == 1:
            idx = names.index(tname)
        elif len(sub_workspaces) == len(tasks):
            idx = pos
        add(ws, idx, expected=True)
    exp_id = add(experiment_ws, None, expected=expect_experiment_ws) if isinstance(experiment_ws, RdagentRecord) \
        else None
    return infos, exp_id, errors


def _tasks_of(recs: list[Any]) -> list[TaskInfo]:
    return [t for t in (_task(r) for r in recs) if t is not None]


def _sub_workspaces(src: Any) -> list[Any]:
    if _is_experiment(src):
        return _as_list(src.get("sub_workspace_list"))
    return list(src) if isinstance(src, (list, tuple)) else []


def _runner_metrics(runner: Any) -> dict[str, float] | None:
    if not _is_experiment(runner):
        return None
    ri = runner.get("running_info")
    result = ri.get("result") if isinstance(ri, RdagentRecord) else None
    if result is None:
        result = runner.get("result")
    return _metrics_from_result(result)


def _trusted_trace_roots(run_dir: Path, options: ReadOptions) -> tuple[Path, ...]:
    return (Path(run_dir), *options.data_roots)


def read_loop(run_dir: Path, loop_id: int, loop_entries: LoopScan | list[TraceEntry], *, workspace_root: Path,
              key: bytes | None, scenario: str | None = None, options: ReadOptions | None = None,
              skip: dict[str, TraceFileError] | None = None) -> LoopSnapshot:
    """Everything known about loop `loop_id` of `run_dir` (see module docstring for the rules).

    `loop_entries` come from `scan_run(run_dir).loops[loop_id]`; `scenario` (from `read_run`) only decides the action
    of a loop that has not logged a task yet. This unpickles in the calling process: ingest calls it inside the
    isolated worker (`isolation.ReaderPool`). A file that fails - to read, or to be interpreted - drops only its own
    facts; `skip` names files not to open at all (with the error to record).
    """
    options = options or ReadOptions()
    entries = list(loop_entries.entries if isinstance(loop_entries, LoopScan) else loop_entries)
    entries.sort(key=lambda e: e.sort_key)
    files = _LoopFiles(entries, key, options=options, trusted=_trusted_trace_roots(run_dir, options), skip=skip)

    hypo_entry = _latest(entries, TAG_HYPOTHESIS)
    exp_entry = _latest(entries, TAG_EXPERIMENT)
    runner_entry = _latest(entries, TAG_RUNNER)
    coder_entry = _latest(entries, TAG_CODER)
    evolving_entry = _latest(entries, TAG_EVOLVING)
    fb_entry = _latest(entries, TAG_FEEDBACK)
    hypo_rec = files.load(hypo_entry)
    exp_gen = files.load(exp_entry)
    runner = files.load(runner_entry)
    coder = files.load(coder_entry)
    evolving = files.load(evolving_entry)
    fb_rec = files.load(fb_entry)
    files.check_all()  # signature of every other file of the loop (charts, logs, earlier evolution rounds)

    exp_entry_of = runner_entry if _is_experiment(runner) else coder_entry if _is_experiment(coder) else None
    experiment = runner if _is_experiment(runner) else coder if _is_experiment(coder) else None

    # hypothesis
    hypothesis = files.interpret(hypo_entry, _hypothesis, hypo_rec) if isinstance(hypo_rec, RdagentRecord) else None
    if hypothesis is None and experiment is not None:
        hypothesis = files.interpret(exp_entry_of, _hypothesis, experiment.get("hypothesis"))

    # tasks: the generated list, else the experiment's sub_tasks
    tasks: list[TaskInfo] = []
    if isinstance(exp_gen, (list, tuple)):
        tasks = files.interpret(exp_entry, _tasks_of, _as_list(exp_gen)) or []
    if not tasks and experiment is not None:
        tasks = files.interpret(exp_entry_of, _tasks_of, _as_list(experiment.get("sub_tasks"))) or []

    # action
    action: str
    if hypothesis is not None and hypothesis.action in ("factor", "model"):
        action = hypothesis.action
    elif any(isinstance(t, ModelTaskInfo) for t in tasks) or (experiment is not None and
                                                               experiment.class_name == "QlibModelExperiment"):
        action = "model"
    elif tasks or experiment is not None:
        action = "factor"
    else:
        action = "model" if scenario == "fin_model" else "factor"

    # workspaces: the most advanced source wins
    sub_ws: list[Any] = []
    ws_entry: TraceEntry | None = None
    for src, src_entry in ((runner, runner_entry), (coder, coder_entry), (evolving, evolving_entry)):
        sub_ws = files.interpret(src_entry, _sub_workspaces, src) or []
        if sub_ws:
            ws_entry = src_entry
            break
    experiment_ws = experiment.get("experiment_workspace") if experiment is not None else None
    found = files.interpret(ws_entry or exp_entry_of, lambda: _workspace_infos(
        sub_ws, experiment_ws, tasks, workspace_root=workspace_root, expect_experiment_ws=runner_entry is not None,
        data_roots=options.data_roots, skip=skip))
    workspaces, exp_ws_id, ws_errors = found if found is not None else ([], None, [])

    # metrics: the runner's result, else qlib_res.csv of the experiment workspace
    metrics: dict[str, float] | None = None
    metrics_source: str | None = None
    if runner_entry is not None:
        note_file(runner_entry.path)
    metrics = files.interpret(runner_entry, _runner_metrics, runner)
    if metrics:
        metrics_source = "runner_result"
    if not metrics and exp_ws_id is not None:
        exp_info = next((w for w in workspaces if w.workspace_id == exp_ws_id), None)
        if exp_info is not None and exp_info.workspace_path is not None:
            res = Path(exp_info.workspace_path) / "qlib_res.csv"
            if res.is_file() or res.is_symlink():
                try:
                    metrics = read_qlib_res(res, trusted_roots=(Path(workspace_root), *options.data_roots))
                    metrics_source = "qlib_res.csv"
                except TraceReadError as err:
                    ws_errors.append(err.to_contract())

    feedback = files.interpret(fb_entry, _feedback, fb_rec)

    # status (see module docstring)
    if fb_entry is None:
        status = "running"
    elif runner_entry is None or (feedback is not None and feedback.exception):
        status = "failed"
    else:
        status = "completed"

    times = [e.logged_at_utc for e in entries if e.logged_at_utc is not None]
    return LoopSnapshot(
        loop_id=loop_id, action=action, status=status,  # type: ignore[arg-type]
        last_step=entries[-1].step if entries else None, hypothesis=hypothesis, tasks=tasks, workspaces=workspaces,
        experiment_workspace_id=exp_ws_id, metrics=metrics, metrics_source=metrics_source, feedback=feedback,
        signature=files.signature, entries=[e.to_info() for e in entries], errors=files.errors + ws_errors,
        started_at_utc=min(times) if times else None, updated_at_utc=max(times) if times else None,
    )


# --------------------------------------------------------------------------------------------------------------------
# the run


def _sanitize_run_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return cleaned[:200] or "run"


def infer_scenario(scan: Any, key: bytes | None, *, options: ReadOptions | None = None) -> str:
    """fin_quant | fin_factor | fin_model | unknown, from the first loop whose hypothesis / tasks can be read.

    Reads at most two small pickles per loop tried (the hypothesis, then the generated task list).
    """
    for lid in scan.loop_ids:
        entries = scan.loops[lid].entries
        opts = options or ReadOptions()
        files = _LoopFiles(entries, key, options=opts, trusted=_trusted_trace_roots(scan.run_dir, opts))
        hypo = files.load(_latest(entries, TAG_HYPOTHESIS))
        if is_record(hypo, "QlibQuantHypothesis") or (isinstance(hypo, RdagentRecord) and
                                                      hypo.get("action") in ("factor", "model")):
            return "fin_quant"
        tasks = files.load(_latest(entries, TAG_EXPERIMENT))
        kinds = {r.class_name for r in _as_list(tasks) if isinstance(r, RdagentRecord)}
        if "ModelTask" in kinds:
            return "fin_model"
        if "FactorTask" in kinds:
            return "fin_factor"
    return "unknown"


def read_run(run_dir: Path, workspace_root: Path, *, key: bytes | None = None, scan: Any = None,
             options: ReadOptions | None = None) -> RunSnapshot:
    """The run-level facts of one RD-Agent run folder (scan it first with `scan_run`, or pass the scan)."""
    scan = scan if scan is not None else scan_run(run_dir)
    return run_facts(run_dir, workspace_root, scan, scenario=infer_scenario(scan, key, options=options))


def run_facts(run_dir: Path, workspace_root: Path, scan: Any, *, scenario: str = "unknown") -> RunSnapshot:
    """The run-level facts that need no pickle (names, paths, start time, loop ids), with `scenario` as given.

    Why apart from `read_run`: the scenario is the only fact that unpickles, and a re-ingest where no loop changed
    needs none (the registry keeps the scenario it stored; "unknown" never overwrites it), so no reader is started.
    """
    run_dir = Path(run_dir)
    started: datetime | None = run_started_at(run_dir)
    if started is None:
        times = [e.logged_at_utc for lp in scan.loops.values() for e in lp.entries if e.logged_at_utc is not None]
        started = min(times) if times else None
    return RunSnapshot(task_run_id=_sanitize_run_id(run_dir.name), run_folder=run_dir.name,
                       log_trace_path=str(run_dir), workspace_root=str(workspace_root),
                       scenario=scenario, started_at_utc=started, loop_ids=scan.loop_ids)


def read_run_loops(run_dir: Path, workspace_root: Path, *, key: bytes | None = None,
                   options: ReadOptions | None = None) -> tuple[RunSnapshot, list[LoopSnapshot]]:
    """Convenience: the run and all of its loops, in loop order (in this process; ingest isolates it)."""
    scan = scan_run(run_dir)
    run = read_run(run_dir, workspace_root, key=key, scan=scan, options=options)
    loops = [read_loop(run_dir, lid, scan.loops[lid], workspace_root=workspace_root, key=key, scenario=run.scenario,
                       options=options) for lid in scan.loop_ids]
    return run, loops

