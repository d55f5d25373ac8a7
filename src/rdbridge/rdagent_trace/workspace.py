"""RD-Agent workspaces on this machine: find them, list and hash their files, read their results.

A trace records each workspace by the absolute path on the machine that ran RD-Agent (Linux, WSL, or
``C:\\...\\workspace\\<uuid>``). Only the folder name is portable, so we resolve ``--workspace-root / <name>``.
Workspaces hold symlinks (``daily_pv.h5`` points into RD-Agent's data folder); a link is followed only when its target
lies inside the workspace root itself or an explicit ``--data-root``, so a crafted trace cannot make us hash (and so
probe) arbitrary files. Only regular files are ever opened (`files.open_regular`): a FIFO or device file is listed
with an error, never read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from rdbridge.contracts.trace import WorkspaceFileInfo, WorkspaceInfo, WorkspaceKind
from rdbridge.rdagent_trace.errors import BadFormatError, NotUtf8Error, TraceReadError, UnreadableFileError
from rdbridge.rdagent_trace.files import default_max_pickle_bytes, inside, read_regular, sha256_regular

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["workspace_name", "resolve_workspace", "describe_workspace", "workspace_kind", "read_qlib_res",
           "read_portfolio_report", "read_text_file"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
MAX_TEXT_BYTES = 16 << 20  # code and CSV files RD-Agent writes are a few KB


def workspace_name(recorded_path: Any) -> str | None:
    """The last component of a recorded workspace path (POSIX, Windows or WSL spelling); None if it is unsafe."""
    text = str(recorded_path).strip().rstrip("/\\")
    if not text:
        return None
    name = PureWindowsPath(text).name if ("\\" in text or re.match(r"[A-Za-z]:", text)) else PurePosixPath(text).name
    return name if _SAFE_NAME.fullmatch(name) and name not in (".", "..") else None


def resolve_workspace(recorded_path: Any, workspace_root: Path) -> tuple[str | None, Path | None]:
    """(workspace_id, folder under `workspace_root` or None when it is not there)."""
    name = workspace_name(recorded_path)
    if name is None:
        return None, None
    candidate = Path(workspace_root) / name
    if not candidate.is_dir():
        return name, None
    # a workspace folder that is a link out of the workspace root is treated as missing: we never read outside it
    if not _inside(Path(os.path.realpath(candidate)), Path(os.path.realpath(workspace_root))):
        return name, None
    return name, candidate


# --------------------------------------------------------------------------------------------------------------------
# hashing, with a cache: the same data file is linked from every factor workspace


_HASH_CACHE: "OrderedDict[tuple[str, int, int, int], str]" = OrderedDict()
_HASH_CACHE_SIZE = 10_000


def _sha256_file(path: Path, trusted: tuple[Path, ...]) -> tuple[str, int]:
    """(sha256, size) of a regular file (a link only into `trusted`); cached by (path, inode, size, mtime)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached, st.st_size
    digest, fst = sha256_regular(path, trusted)
    _HASH_CACHE[key] = digest
    while len(_HASH_CACHE) > _HASH_CACHE_SIZE:
        _HASH_CACHE.popitem(last=False)
    return digest, fst.st_size


def _inside(path: Path, root: Path) -> bool:
    return inside(path, root)


def _file_info(path: Path, rel: str, trusted: tuple[Path, ...]) -> tuple[WorkspaceFileInfo, TraceReadError | None]:
    lst = path.lstat()
    if stat.S_ISREG(lst.st_mode):
        digest, size = _sha256_file(path, ())
        return WorkspaceFileInfo(relpath=rel, size_bytes=size, sha256=digest), None
    if not stat.S_ISLNK(lst.st_mode):  # FIFO, device, socket: listed, never opened
        err = UnreadableFileError(path, "not a regular file (a FIFO, device or socket); listed, not read")
        return WorkspaceFileInfo(relpath=rel, size_bytes=0), err
    target = Path(os.path.realpath(path))
    if not target.exists():
        return WorkspaceFileInfo(relpath=rel, size_bytes=lst.st_size, is_symlink=True, dangling=True), None
    roots = tuple(Path(os.path.realpath(r)) for r in trusted)
    if any(inside(target, r) for r in roots) and stat.S_ISREG(os.stat(target).st_mode):
        digest, size = _sha256_file(path, trusted)
        return WorkspaceFileInfo(relpath=rel, size_bytes=size, sha256=digest, is_symlink=True), None
    # a link out of the trusted folders (or to a folder / FIFO): recorded, never read
    return WorkspaceFileInfo(relpath=rel, size_bytes=lst.st_size, is_symlink=True), None


def list_workspace_files(ws_dir: Path, workspace_root: Path, data_roots: tuple[Path, ...] = ()
                         ) -> tuple[list[WorkspaceFileInfo], list[TraceReadError]]:
    """Every file below `ws_dir` (links not followed into folders), hashed when safe. Sorted by relpath.

    Links are followed only into the workspace root itself and the `data_roots` (`--data-root`), never its parent.
    """
    trusted = (Path(workspace_root), *data_roots)
    files: list[WorkspaceFileInfo] = []
    errors: list[TraceReadError] = []
    for dirpath, dirnames, filenames in os.walk(ws_dir, followlinks=False):
        base = Path(dirpath)
        # symlinked folders show up in dirnames; os.walk does not descend into them: record them as links
        names = list(filenames) + [d for d in dirnames if os.path.islink(base / d)]
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(base / d))
        for name in names:
            path = base / name
            rel = path.relative_to(ws_dir).as_posix()
            try:
                info, err = _file_info(path, rel, trusted)
                files.append(info)
                if err is not None:
                    errors.append(err)
            except TraceReadError as e:
                errors.append(e)
                files.append(WorkspaceFileInfo(relpath=rel, size_bytes=0, is_symlink=os.path.islink(path)))
            except OSError as e:
                errors.append(UnreadableFileError(path, f"cannot read workspace file: {e.strerror or e}"))
                files.append(WorkspaceFileInfo(relpath=rel, size_bytes=0, is_symlink=os.path.islink(path)))
    files.sort(key=lambda f: f.relpath)
    return files, errors


# --------------------------------------------------------------------------------------------------------------------
# kind

_CLASS_KINDS: dict[str, WorkspaceKind] = {"FactorFBWorkspace": "factor", "ModelFBWorkspace": "model",
                                          "QlibFBWorkspace": "experiment"}


def workspace_kind(file_names: list[str] | set[str], class_name: str | None = None) -> WorkspaceKind:
    """factor (factor.py), model (model.py, no conf), experiment (conf*.yaml or qlib_res.csv); the class wins if known."""
    if class_name in _CLASS_KINDS:
        return _CLASS_KINDS[class_name]
    top = {n for n in file_names if "/" not in n}
    if any(n.startswith("conf") and n.endswith(".yaml") for n in top) or "qlib_res.csv" in top:
        return "experiment"
    if "factor.py" in top:
        return "factor"
    if "model.py" in top:
        return "model"
    return "unknown"


def read_text_file(path: Path, trusted_roots: tuple[Path, ...] = ()) -> str:
    """A code / text file as UTF-8 (regular file, at most 16 MiB); `NotUtf8Error` naming the file (we never guess an
    encoding for code)."""
    data = read_regular(Path(path), MAX_TEXT_BYTES, trusted_roots)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotUtf8Error(path, f"not UTF-8 (byte {e.start}); re-save the file as UTF-8") from None


_CODE_SUFFIXES = (".py",)


def describe_workspace(ws_dir: Path | None, *, workspace_root: Path, recorded_path: str, workspace_id: str,
                       class_name: str | None = None, task_index: int | None = None,
                       file_dict: dict[str, Any] | None = None, data_roots: tuple[Path, ...] = ()
                       ) -> tuple[WorkspaceInfo, list[TraceReadError]]:
    """What one workspace holds. `file_dict` is RD-Agent's in-memory copy of the code (from the trace); code files it
    lacks (older traces) are read from disk. A missing folder gives `exists=False` and no error here: the caller knows
    whether the workspace was expected to exist yet."""
    errors: list[TraceReadError] = []
    code: dict[str, str] = {}
    for name, content in (file_dict or {}).items():
        if isinstance(content, str):
            code[str(name)] = content
        elif isinstance(content, bytes):
            try:
                code[str(name)] = content.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(NotUtf8Error(f"{recorded_path}:{name}", "code held by RD-Agent is not UTF-8"))
    files: list[WorkspaceFileInfo] = []
    if ws_dir is not None:
        files, errors_files = list_workspace_files(ws_dir, workspace_root, data_roots)
        errors.extend(errors_files)
        for f in files:
            # Code on disk is what ran: read it even when the trace holds a copy, so a damaged file is reported.
            if f.relpath.endswith(_CODE_SUFFIXES) and "/" not in f.relpath and not f.is_symlink:
                try:
                    text = read_text_file(ws_dir / f.relpath)
                except TraceReadError as e:
                    errors.append(e)
                    continue
                code.setdefault(f.relpath, text)
    names = [f.relpath for f in files] or list(code)
    info = WorkspaceInfo(workspace_id=workspace_id, kind=workspace_kind(names, class_name), recorded_path=recorded_path,
                         workspace_path=str(ws_dir) if ws_dir is not None else None, exists=ws_dir is not None,
                         task_index=task_index, code=code, files=files)
    return info, errors


# --------------------------------------------------------------------------------------------------------------------
# results


def _to_float(text: str) -> float | None:
    t = text.strip()
    if t == "" or t.lower() in ("nan", "none", "null"):
        return math.nan
    try:
        return float(t)
    except ValueError:
        return None


def read_qlib_res(path: Path, trusted_roots: tuple[Path, ...] = ()) -> dict[str, float]:
    """Qlib's metrics Series as RD-Agent writes it (``metrics.to_csv("qlib_res.csv")``): a header line ``,0`` then
    ``name,value`` rows. NaN values are dropped (they are not numbers a caller can compare or store as JSON)."""
    text = read_text_file(path, trusted_roots)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise BadFormatError(path, "empty qlib_res.csv; RD-Agent's backtest wrote no metrics")
    out: dict[str, float] = {}
    first = rows[0]
    start = 1 if len(first) >= 2 and (not first[0].strip() or _to_float(first[1]) is None) else 0  # ",0" header
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip():
            raise BadFormatError(path, f"line {lineno}: expected 'metric,value', got {','.join(row)[:80]!r}")
        value = _to_float(row[1])
        if value is None:
            raise BadFormatError(path, f"line {lineno}: value {row[1][:40]!r} of {row[0][:60]!r} is not a number")
        if not math.isnan(value):
            out[row[0].strip()] = value
    if not out:
        raise BadFormatError(path, "qlib_res.csv holds no numeric metric")
    return out


def read_portfolio_report(ws_dir: Path, *, max_bytes: int | None = None, trusted_roots: tuple[Path, ...] = ()
                          ) -> "pd.DataFrame | None":
    """Qlib's portfolio report (report_normal_1day) of an experiment workspace: ``ret.parquet`` (rdagent >= 1.0) or the
    legacy pickled ``ret.pkl`` (unpickled in the isolated reader pool, `isolation.safe_load_file`). None when neither
    exists. Both are opened as regular files only, within the size cap."""
    import pandas as pd

    from rdbridge.rdagent_trace.isolation import safe_load_file

    cap = max_bytes or default_max_pickle_bytes()
    trusted = (Path(ws_dir), *trusted_roots)
    parquet, pkl = Path(ws_dir) / "ret.parquet", Path(ws_dir) / "ret.pkl"
    if parquet.is_file():
        data = read_regular(parquet, cap, trusted)
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for bad files
            raise BadFormatError(parquet, f"not a readable parquet file ({type(e).__name__}: {e})") from None
    if pkl.is_file():
        obj = safe_load_file(pkl, max_bytes=cap, trusted_roots=trusted)
        if not isinstance(obj, pd.DataFrame):
            raise BadFormatError(pkl, f"expected a pickled DataFrame, found {type(obj).__name__}")
        return obj
    return None
