"""Find RD-Agent runs and list their trace pickles without opening any of them.

RD-Agent's FileStorage writes ``<run>/<tag path>/<pid>/<%Y-%m-%d_%H-%M-%S-%f>.pkl`` where the tag path of a loop step
is ``Loop_<i>/<step>/<tag>`` and may be deeper (CoSTEER logs ``Loop_0/coding/evo_loop_3/evolving code``). The walker
only stats files (cheap enough to run on every poll of a live run) and never reads ``__session__`` (RD-Agent's
resumable session dumps: large, and pickles of the whole loop object).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path

from rdbridge.contracts.trace import TraceEntryInfo

__all__ = ["TraceEntry", "LoopScan", "RunScan", "discover_runs", "scan_run", "run_started_at", "parse_log_timestamp"]

LOOP_DIR = re.compile(r"Loop_(\d{1,9})")
TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"
SESSION_DIR = "__session__"


@dataclass(frozen=True)
class TraceEntry:
    """One trace pickle. `tag` is the leaf tag name (``evolving code``); `tag_path` keeps intermediate levels.

    `file` is the path as the scan found it; `path` is built from it on first use (only a loop being read needs it,
    and a `Path` per pickle was a fifth of the scan of an unchanged trace).
    """

    file: str
    relpath: str
    step: str
    tag: str
    tag_path: str
    pid: str
    size_bytes: int
    mtime_ns: int
    logged_at_utc: datetime | None

    @cached_property
    def path(self) -> Path:
        return Path(self.file)

    def to_info(self) -> TraceEntryInfo:
        return TraceEntryInfo(relpath=self.relpath, step=self.step, tag=self.tag, size_bytes=self.size_bytes,
                              mtime_ns=self.mtime_ns, logged_at_utc=self.logged_at_utc)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Order of writing: the logged timestamp (RD-Agent's clock), then the path for ties / unparsable names."""
        return (self.logged_at_utc or datetime.min.replace(tzinfo=timezone.utc), self.relpath)


@dataclass
class LoopScan:
    loop_id: int
    entries: list[TraceEntry] = field(default_factory=list)

    def steps(self) -> dict[str, dict[str, list[TraceEntry]]]:
        """step -> leaf tag -> entries, oldest first."""
        out: dict[str, dict[str, list[TraceEntry]]] = {}
        for e in sorted(self.entries, key=lambda e: e.sort_key):
            out.setdefault(e.step, {}).setdefault(e.tag, []).append(e)
        return out

    def latest(self, tag: str, step: str | None = None) -> TraceEntry | None:
        """The newest entry with this leaf tag (RD-Agent may log a tag repeatedly, e.g. per evolution round)."""
        found = [e for e in self.entries if e.tag == tag and (step is None or e.step == step)]
        return max(found, key=lambda e: e.sort_key) if found else None


@dataclass
class RunScan:
    run_dir: Path
    loops: dict[int, LoopScan] = field(default_factory=dict)
    run_entries: list[TraceEntry] = field(default_factory=list)  # tags outside loops (debug_tpl, scenario, ...)
    ignored: list[str] = field(default_factory=list)  # stray or non-pkl files, relative paths

    @property
    def loop_ids(self) -> list[int]:
        return sorted(self.loops)


_TIMESTAMP_SHAPE = re.compile(r"(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})-(\d{6})")


def parse_log_timestamp(text: str) -> datetime | None:
    """RD-Agent's file / folder timestamp (UTC) or None when `text` is not one.

    The exact shape RD-Agent writes is parsed from its digits (a scan parses one per pickle, and `strptime` was a
    sixth of a re-ingest); any other spelling `strptime` accepts goes through `strptime`, so the result is the same.
    """
    m = _TIMESTAMP_SHAPE.fullmatch(text)
    if m is not None:
        try:
            return datetime(*map(int, m.groups()), tzinfo=timezone.utc)
        except ValueError:
            return None
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def run_started_at(run_dir: Path) -> datetime | None:
    """When the run started, from its folder name (RD-Agent names it by the UTC start time); None if not a timestamp."""
    return parse_log_timestamp(Path(run_dir).name)


def _is_run_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            for d in it:
                if d.is_dir(follow_symlinks=False) and (LOOP_DIR.fullmatch(d.name) or d.name == SESSION_DIR):
                    return True
    except OSError:
        return False
    return False


def discover_runs(log_root: Path) -> list[Path]:
    """Run folders under `log_root` (RD-Agent's log folder), or `[log_root]` when it is itself a run folder.

    A run folder holds ``Loop_<n>`` folders (or a ``__session__`` folder, for a run that has not logged a loop yet).
    Sorted by name, which for RD-Agent's timestamp names is the start order.
    """
    root = Path(log_root)
    if _is_run_dir(root):
        return [root]
    try:
        children = sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in children if _is_run_dir(p)]


def _walk_files(top: str) -> list[tuple[str, str, os.stat_result]]:
    """(path, name, lstat) of every regular file below `top`, not following symlinked folders.

    Plain strings, not `Path`s: a scan lists every pickle of a run on each ingest, and path objects were most of it.
    """
    out: list[tuple[str, str, os.stat_result]] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False) or e.name.endswith(".pkl"):
                            # a linked (even dangling) pickle, or a FIFO / device named .pkl, is still a trace entry:
                            # reading it reports the problem (it is never opened unless it is a regular file)
                            out.append((e.path, e.name, e.stat(follow_symlinks=False)))
                    except OSError:
                        continue
        except OSError:
            continue
    return out


def _is_pickle_name(name: str) -> bool:
    """`Path(name).suffix == ".pkl"` without building a path (a bare ``.pkl`` has no suffix)."""
    return len(name) > 4 and name.endswith(".pkl")


def _entry(path: str, relpath: str, name: str, st: os.stat_result, parts: list[str], step: str
           ) -> TraceEntry | None:
    """`parts` are the folders between the step folder and the file: tag levels..., pid."""
    if len(parts) < 2:
        return None
    tag_parts, pid = parts[:-1], parts[-1]
    return TraceEntry(file=path, relpath=relpath, step=step, tag=tag_parts[-1], tag_path="/".join(tag_parts),
                      pid=pid, size_bytes=st.st_size, mtime_ns=st.st_mtime_ns,
                      logged_at_utc=parse_log_timestamp(name[:-4]))


def scan_run(run_dir: Path) -> RunScan:
    """List every trace pickle of one run, grouped by loop. Stats only; unknown tags and stray files are tolerated."""
    run_dir = Path(run_dir)
    scan = RunScan(run_dir=run_dir)
    try:
        top = list(os.scandir(run_dir))
    except OSError:
        return scan
    prefix = os.path.join(str(run_dir), "")  # scandir joins the same way, so a relpath is a slice
    for d in top:
        if d.name == SESSION_DIR:
            continue
        if not d.is_dir(follow_symlinks=False):
            scan.ignored.append(d.name)
            continue
        m = LOOP_DIR.fullmatch(d.name)
        loop = scan.loops.setdefault(int(m.group(1)), LoopScan(int(m.group(1)))) if m else None
        for path, name, st in _walk_files(d.path):
            rel = path[len(prefix):]
            if not _is_pickle_name(name):
                scan.ignored.append(rel)
                continue
            inner = rel.split("/")[1:]  # loop: step/tag.../pid/file ; other: tag.../pid/file
            if loop is not None:
                entry = _entry(path, rel, name, st, inner[1:-1], inner[0]) if len(inner) >= 4 else None
                if entry is None:
                    scan.ignored.append(rel)
                else:
                    loop.entries.append(entry)
            else:
                entry = _entry(path, rel, name, st, [d.name, *inner[:-1]], "")
                if entry is None:
                    scan.ignored.append(rel)
                else:
                    scan.run_entries.append(entry)
    for loop in scan.loops.values():
        loop.entries.sort(key=lambda e: e.sort_key)
    scan.ignored.sort()
    return scan
