"""Reading RD-Agent's on-disk output (log trace + workspaces) safely, into `rdbridge.contracts.trace` values.

API: `discover_runs(log_root)` lists run folders (log_root is RD-Agent's log folder or one run folder);
`scan_run(run_dir) -> RunScan` lists every trace pickle per loop by stat only (`scan.loops[i]` is a `LoopScan`, its
`entries` carry size / mtime_ns / logged time for incremental ingest; `__session__` is never read);
`load_signing_key(key_file)` gives the HMAC key (key file bytes, else sha256 of env ARTIFACT_SIGNING_KEY, else None);
`read_run(run_dir, workspace_root, key=...) -> RunSnapshot` (scenario inferred from one or two small pickles);
`read_loop(run_dir, loop_id, scan.loops[loop_id], workspace_root=..., key=...) -> LoopSnapshot` interprets one loop
(status running / completed / failed, tasks, workspaces resolved by folder name under workspace_root, metrics from
the runner result or qlib_res.csv, feedback, worst signature status, per-file errors as values).
Pickles are only ever loaded by `safe_unpickle.SafeUnpickler` (allow-list, checked calls and BUILDs; RD-Agent objects
become `RdagentRecord`s), and outside tests only inside the isolated reader pool (`isolation.ReaderPool`):
`safe_load_file(path, max_bytes=...)` loads one pickle file (e.g. `ret.pkl`) there and returns the rebuilt object or
raises a `TraceReadError` subclass (also `TooLargeError`, `CrashedError`, `TimedOutError`). See docs/security.md.
`read_trace_pickle(path, key)` checks the signature first. Every failure is a `TraceReadError` with a `kind` equal to
`TraceFileError.kind`.
"""

from rdbridge.rdagent_trace.errors import (
    BadFormatError,
    CorruptPickleError,
    CrashedError,
    ForbiddenClassError,
    MissingWorkspaceError,
    NotUtf8Error,
    TamperedPickleError,
    TimedOutError,
    TooLargeError,
    TraceReadError,
    TruncatedPickleError,
    UnreadableFileError,
)
from rdbridge.rdagent_trace.isolation import ReaderPool, safe_load_file
from rdbridge.rdagent_trace.loop_reader import ReadOptions, infer_scenario, read_loop, read_run, read_run_loops
from rdbridge.rdagent_trace.safe_unpickle import RdagentRecord, SafeUnpickler, safe_loads
from rdbridge.rdagent_trace.signed import load_signing_key, read_trace_pickle
from rdbridge.rdagent_trace.walker import LoopScan, RunScan, TraceEntry, discover_runs, run_started_at, scan_run
from rdbridge.rdagent_trace.workspace import (
    describe_workspace,
    read_portfolio_report,
    read_qlib_res,
    resolve_workspace,
)

__all__ = [
    "BadFormatError", "CorruptPickleError", "ForbiddenClassError", "MissingWorkspaceError", "NotUtf8Error",
    "TamperedPickleError", "TraceReadError", "TruncatedPickleError", "UnreadableFileError", "TooLargeError",
    "CrashedError", "TimedOutError", "ReaderPool", "safe_load_file", "ReadOptions",
    "infer_scenario", "read_loop", "read_run", "read_run_loops",
    "RdagentRecord", "SafeUnpickler", "safe_loads",
    "load_signing_key", "read_trace_pickle",
    "LoopScan", "RunScan", "TraceEntry", "discover_runs", "run_started_at", "scan_run",
    "describe_workspace", "read_portfolio_report", "read_qlib_res", "resolve_workspace",
]
