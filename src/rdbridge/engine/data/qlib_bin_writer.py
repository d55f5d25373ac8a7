"""Write a panel as a Qlib data directory, so pyqlib (tests, benchmarks) and our reader see the same bytes.

Layout, as Qlib's ``scripts/dump_bin.py`` writes it and ``qlib/data/storage/file_storage.py`` reads it:

- ``calendars/day.txt``: one ``YYYY-MM-DD`` per line, the common calendar;
- ``instruments/all.txt``: ``CODE<TAB>first day<TAB>last day`` per instrument;
- ``features/<code lowercased>/<field lowercased>.day.bin``: little-endian float32; the first value is the
  instrument's first calendar index, then one value per calendar day up to its last day (NaN when suspended).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from rdbridge.engine.data._panel import KEYS, DataServiceError, densify, normalize

# Windows cannot create files with these names; Qlib prefixes them (qlib.utils.code_to_fname).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
RESERVED_PREFIX = "_qlib_"


def code_to_dirname(code: str) -> str:
    """The folder name Qlib uses for an instrument: lower-cased, reserved device names prefixed."""
    name = RESERVED_PREFIX + code if code.upper() in _RESERVED else code
    return name.lower()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_qlib_dir(
    panel: pl.DataFrame,
    qlib_dir: str | Path,
    *,
    freq: str = "day",
    calendar: np.ndarray | None = None,
) -> Path:
    """Write ``panel`` (long layout) under ``qlib_dir``; returns the directory.

    The calendar defaults to every date in the panel. Instruments keep their case in ``all.txt`` and are
    lower-cased for folder names, as in Qlib. Existing files of the same names are replaced.
    """
    qlib_dir = Path(qlib_dir)
    panel = normalize(panel, "panel to write")
    cal = np.unique(panel["datetime"].to_numpy()) if calendar is None else np.asarray(calendar, "datetime64[us]")
    outside = ~np.isin(np.unique(panel["datetime"].to_numpy()), cal)
    if outside.any():
        raise DataServiceError("panel to write: some dates are not on the given calendar; pass a calendar that covers them")
    panel = densify(panel, cal)
    fields = [c for c in panel.columns if c not in KEYS]

    for sub in ("calendars", "instruments", "features"):
        (qlib_dir / sub).mkdir(parents=True, exist_ok=True)
    days = np.datetime_as_string(cal.astype("datetime64[D]"), unit="D")
    _atomic_write_bytes(qlib_dir / "calendars" / f"{freq}.txt", ("\n".join(days) + "\n").encode())

    index_of = {d: i for i, d in enumerate(cal.astype("datetime64[us]").astype(np.int64))}
    lines = []
    for (code,), part in panel.group_by(["instrument"], maintain_order=True):
        stamps = part["datetime"].to_numpy().astype("datetime64[us]").astype(np.int64)
        first = index_of[int(stamps[0])]
        lines.append(f"{code}\t{days[first]}\t{days[index_of[int(stamps[-1])]]}")
        folder = qlib_dir / "features" / code_to_dirname(str(code))
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for field in fields:
            values = part[field].to_numpy().astype("<f4")
            payload = np.concatenate([np.array([first], dtype="<f4"), values]).tobytes()
            _atomic_write_bytes(folder / f"{field.lower()}.{freq}.bin", payload)
    _atomic_write_bytes(qlib_dir / "instruments" / "all.txt", ("\n".join(lines) + "\n").encode())
    return qlib_dir
