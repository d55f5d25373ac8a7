"""``factorlib promote``: accepted RD-Agent factors -> checked pure functions in rd_factors_lib's generated.py.

Per factor: static safety check, AST transformation, then the original script and the new function both run in
sandboxed subprocesses on the same input; only identical results are promoted. All promoted factors of one run
of this command make one new version (patch bump) with an immutable snapshot; the same code again changes nothing.
Refusals are recorded on the factor row (``promotion_status='refused'``, ``promotion_error``).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rdbridge.contracts.factorlib import FactorOutcome, PromotionReport
from rdbridge.factorlib import package as pkg
from rdbridge.factorlib import safety, sandbox
from rdbridge.factorlib.names import function_name
from rdbridge.factorlib.transform import TransformError, to_function
from rdbridge.registry import init_db, make_engine, session_scope
from rdbridge.registry.models import Factor, FactorPackageVersion, Loop, Task, Workspace, factor_id_for

IMPL_MODULE = f"{pkg.PACKAGE}.generated"

AfterPromotion = Callable[[list[str]], None]
"""Hook called with the experiment ids whose factors got new impl_* values (the CLI wires the factor_meta refresh)."""


@dataclass
class Candidate:
    experiment_id: str
    factor_name: str
    workspace: Path | None
    code: str | None
    factor: Factor | None


def _candidates(s: Session, loop_ids: list[str] | None, names: list[str] | None) -> list[Candidate]:
    """Factor tasks of accepted loops (or of the named loops), in loop order; named factors only when given."""
    q = select(Loop).where(Loop.action == "factor").order_by(Loop.task_run_id, Loop.loop_id)
    if loop_ids:
        q = q.where(Loop.experiment_id.in_(loop_ids))
    elif not names:
        q = q.where(Loop.decision.is_(True))
    out: list[Candidate] = []
    for loop in s.scalars(q):
        tasks = s.scalars(select(Task).where(Task.experiment_id == loop.experiment_id, Task.task_type == "factor")
                          .order_by(Task.task_index))
        for task in tasks:
            if names and task.name not in names:
                continue
            ws = s.get(Workspace, task.workspace_id) if task.workspace_id else None
            ws_dir = Path(ws.workspace_path) if ws is not None and ws.workspace_path and ws.exists else None
            code = None
            if ws_dir is not None and (ws_dir / "factor.py").is_file():
                code = (ws_dir / "factor.py").read_text(encoding="utf-8")
            row = s.get(Factor, factor_id_for(task.name, code)) if code is not None else None
            out.append(Candidate(loop.experiment_id, task.name, ws_dir, code, row))
    return out


def _docstring(c: Candidate) -> str:
    f = c.factor
    formula = (f.formulation or f.description or "").strip() if f else ""
    owner = f.experiment_id if f else c.experiment_id
    sha = hashlib.sha256((c.code or "").encode("utf-8")).hexdigest()[:12]
    formula = formula.replace("\n", "\n    ")
    return f"{c.factor_name} = {formula}\n\n    Promoted from RD-Agent loop {owner} (factor.py sha256 {sha}...).\n    "


def _standalone(function_source: str) -> str:
    """A module holding one candidate function, importable without the package (for the sandbox)."""
    header = pkg.GENERATED_HEADER.replace(
        "from ._registry import factor\n",
        "def factor(name):\n    def mark(fn):\n        fn.factor_name = name\n        return fn\n    return mark\n",
    )
    return header + "\n\n" + function_source


def _check(c: Candidate, functions: dict[str, tuple[str, str]]) -> tuple[str, str, str]:
    """(function name, function source, '') or ('', '', reason) for one candidate."""
    if c.code is None or c.workspace is None:
        return "", "", "no factor.py in the loop's workspace"
    if c.factor is None:
        return "", "", "factor.py in the workspace no longer matches the code the registry ingested (re-run ingest)"
    try:
        tree = ast.parse(c.code)
    except SyntaxError as exc:
        return "", "", f"factor.py does not parse: {exc}"
    if reasons := safety.check(tree):
        return "", "", "unsafe code: " + "; ".join(reasons)
    taken = {fn: name for name, (fn, _) in functions.items()}
    func = function_name(c.factor_name, taken)
    try:
        source = to_function(c.code, c.factor_name, func, _docstring(c))
    except TransformError as exc:
        return "", "", f"cannot turn factor.py into a function: {exc}"
    return func, source, ""


def promote(
    db_url: str,
    package_path: Path | None = None,
    *,
    loops: list[str] | None = None,
    factors: list[str] | None = None,
    after_promotion: AfterPromotion | None = None,
    limits: dict[str, float] | None = None,
) -> PromotionReport:
    """Promote the factors of accepted loops (or ``loops``; only ``factors`` when given) into the package."""
    path = pkg.resolve_package(package_path)
    engine = init_db(make_engine(db_url))
    try:
        with pkg.package_lock(path):
            return _promote_locked(engine, path, loops, factors, after_promotion, limits or {})
    finally:
        engine.dispose()


def ensure_snapshot(s: Session, path: Path, added: list[str], changed: list[str]) -> FactorPackageVersion:
    """The registry row of the package's current version, snapshotting it if this version has none yet."""
    version = pkg.read_version(path)
    row = s.scalars(select(FactorPackageVersion).where(FactorPackageVersion.version == version)).one_or_none()
    if row is not None:
        return row
    data = pkg.snapshot_bytes(path)
    sha, rel = pkg.store_snapshot(data)
    row = FactorPackageVersion(version=version, sha256=sha, archive_path=rel, size_bytes=len(data),
                               package_path=str(path), added_json=added, changed_json=changed)
    s.add(row)
    s.flush()
    return row


def _promote_locked(engine, path: Path, loops, names, after_promotion, limits) -> PromotionReport:  # noqa: ANN001
    gen_path = path / pkg.PACKAGE / "generated.py"
    old_bytes = gen_path.read_bytes()
    functions = pkg.generated_functions(old_bytes.decode("utf-8"))
    version_before = pkg.read_version(path)
    with session_scope(engine, write=True) as s:
        recorded = ensure_snapshot(s, path, [], [])
        if recorded.sha256 != hashlib.sha256(pkg.snapshot_bytes(path)).hexdigest():
            raise pkg.PackageError(
                f"the package at {path} differs from the recorded snapshot of version {version_before} "
                f"({recorded.package_path}): it was edited by hand, or this registry belongs to another package; "
                "restore it with `factorlib bundle --version` or use a fresh registry"
            )
        candidates = _candidates(s, loops, names)
    outcomes: list[FactorOutcome] = []
    staged: dict[str, tuple[str, str]] = dict(functions)
    added: list[str] = []
    changed: list[str] = []
    pending: list[tuple[Candidate, FactorOutcome]] = []
    for c in candidates:
        fid = c.factor.factor_id if c.factor else None
        func, source, reason = _check(c, staged)
        stored = ""
        if not reason and staged.get(c.factor_name, ("", ""))[1] == source:
            out = FactorOutcome(experiment_id=c.experiment_id, factor_name=c.factor_name, factor_id=fid,
                                status="unchanged", impl_module=IMPL_MODULE, impl_func=func)
            pending.append((c, out))
            outcomes.append(out)
            continue
        if not reason:
            verdict = sandbox.check_equivalent(
                c.code or "", _standalone(source), func, c.workspace / "daily_pv.h5",  # type: ignore[operator]
                c.workspace / "result.h5", **limits,  # type: ignore[operator]
            )
            reason = "" if verdict.ok else f"not promoted: {verdict.reason}"
            stored = verdict.stored
        if reason:
            outcomes.append(FactorOutcome(experiment_id=c.experiment_id, factor_name=c.factor_name, factor_id=fid,
                                          status="refused", reason=reason))
            continue
        for earlier, o in pending:
            if earlier.factor_name == c.factor_name and o.status in ("added", "changed"):
                o.status, o.impl_module, o.impl_func = "superseded", None, None
                o.reason = f"replaced in this promotion by the code of {c.experiment_id}"
        pending = [(e, o) for e, o in pending if o.status != "superseded"]
        status = "changed" if c.factor_name in functions else "added"
        (changed if status == "changed" else added).append(c.factor_name)
        staged[c.factor_name] = (func, source)
        out = FactorOutcome(experiment_id=c.experiment_id, factor_name=c.factor_name, factor_id=fid, status=status,
                            impl_module=IMPL_MODULE, impl_func=func, stored_result=stored)
        pending.append((c, out))
        outcomes.append(out)
    # a name changed twice in one run: report it once, as changed or added
    added = sorted(set(added))
    changed = sorted(set(changed) - set(added))
    version_after = version_before
    new_bytes = pkg.render_generated(staged).encode("utf-8")
    if new_bytes != old_bytes:
        version_after = pkg.bump_patch(version_before)
        old_version_bytes = (path / pkg.PACKAGE / "VERSION").read_bytes()
        pkg.write_atomic(gen_path, new_bytes)
        pkg.write_atomic(path / pkg.PACKAGE / "VERSION", f"{version_after}\n".encode())
        if err := pkg.check_imports(path):
            pkg.write_atomic(gen_path, old_bytes)
            pkg.write_atomic(path / pkg.PACKAGE / "VERSION", old_version_bytes)
            for o in outcomes:
                if o.status in ("added", "changed"):
                    o.status, o.reason, o.impl_func, o.impl_module = "refused", f"generated.py failed to import: {err}", None, None
            pending = [(c, o) for c, o in pending if o.status == "unchanged"]
            version_after = version_before
    snapshot_sha = None
    with session_scope(engine, write=True) as s:
        if version_after != version_before:
            snapshot_sha = ensure_snapshot(s, path, added, changed).sha256
        touched: set[str] = set()
        for c, o in pending:
            o.impl_version = version_after if o.status != "unchanged" else _version_of(s, o, version_after)
            if c.factor is not None:
                row = s.get(Factor, c.factor.factor_id)
                if row is not None:
                    row.impl_module, row.impl_func, row.impl_version = o.impl_module, o.impl_func, o.impl_version
                    row.promotion_status, row.promotion_error = "promoted", None
                    touched.add(row.experiment_id)
            touched.add(c.experiment_id)
        for o in outcomes:
            if o.status == "refused" and o.factor_id:
                row = s.get(Factor, o.factor_id)
                if row is not None and row.promotion_status != "promoted":
                    row.promotion_status, row.promotion_error = "refused", o.reason
    if after_promotion is not None and touched:
        after_promotion(sorted(touched))
    return PromotionReport(ok=not any(o.status == "refused" for o in outcomes), package_path=str(path), version_before=version_before,
                           version_after=version_after, snapshot_sha256=snapshot_sha, factors=outcomes)


def _version_of(s: Session, o: FactorOutcome, current: str) -> str:
    """For unchanged code: the version already recorded on the factor row, else the current one."""
    row = s.get(Factor, o.factor_id) if o.factor_id else None
    return row.impl_version if row is not None and row.impl_version else current
