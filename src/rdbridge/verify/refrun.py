"""Subprocess entry: run reference functions of one rd_factors_lib bundle on a panel file and write their values.

Invoked as ``python -m rdbridge.verify.refrun BUNDLE_ROOT PANEL.parquet OUT.parquet NAME...`` by
``rdbridge.verify.reference`` only, so package code never runs in the caller's (or an API/UI) process. The bundle
root goes first on ``sys.path`` and the imported package must come from it (an installed copy would be the wrong
version). Errors are written as JSON to stdout; exit 3 when the package cannot be imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    root, panel_path, out_path, *names = argv
    root_dir = Path(root).resolve()
    sys.path.insert(0, str(root_dir))
    import pandas as pd

    try:
        import rd_factors_lib
    except Exception as exc:  # noqa: BLE001 - any import failure of the bundle is reported, not raised
        print(json.dumps({"fatal": f"cannot import rd_factors_lib from {root_dir}: {type(exc).__name__}: {exc}"}))
        return 3
    origin = Path(rd_factors_lib.__file__).resolve()
    if root_dir not in origin.parents:
        print(json.dumps({"fatal": f"rd_factors_lib imported from {origin}, not from the bundle {root_dir}"}))
        return 3
    df = pd.read_parquet(panel_path)
    df["datetime"] = pd.to_datetime(df["datetime"])
    df = df.rename(columns={c: f"${c}" for c in df.columns if c not in ("instrument", "datetime")})
    df = df.set_index(["datetime", "instrument"]).sort_index()
    out = pd.DataFrame(index=df.index)
    errors: dict[str, str] = {}
    for name in names:
        info = rd_factors_lib.REGISTRY.get(name)
        if info is None:
            errors[name] = f"no factor {name!r} in rd_factors_lib {rd_factors_lib.__version__}"
            continue
        try:
            res = info.func(df.copy())
            if isinstance(res, pd.DataFrame):
                res = res.iloc[:, 0]
            out[name] = pd.Series(res).reindex(df.index).astype("float64")
        except Exception as exc:  # noqa: BLE001 - one failing reference function fails only its factor
            errors[name] = f"{type(exc).__name__}: {exc}"
    out.reset_index().to_parquet(out_path)
    print(json.dumps({"version": rd_factors_lib.__version__, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
