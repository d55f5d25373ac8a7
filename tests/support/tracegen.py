"""Write synthetic RD-Agent traces (log pickles + workspaces) without importing rdagent.

Why: genuine traces come from ``/work/shared/tools/make_rdagent_trace.py`` in a separate venv with rdagent installed,
which is slow and cannot make the large or odd traces that ingest tests and benchmarks need (1,000 loops, a loop still
running, corrupted files). This module writes the same on-disk format:
``log/<run>/Loop_<i>/<step>/<tag>/<pid>/<ts>.pkl`` (signed ``RDAGENT_SIGNED_PICKLE_V1`` pickles, or plain ones as older
RD-Agent wrote them) whose globals are rdagent's real module paths and whose attribute dicts carry the same keys, plus
``workspace/<uuid>/`` folders and ``data/daily_pv.h5``.

The classes are stand-ins that exist in ``sys.modules`` only while a pickle is being written (``_stand_ins``), so the
bytes name ``rdagent.core.proposal.Hypothesis`` and so on, exactly like a genuine file. Results are real pandas objects.

Not reproduced on purpose: RD-Agent's own template files (the conf*.yaml, README.md and read_exp_res.py written here are
short stand-ins with the same names), ``__session__`` dumps, and LLM chat tags.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import pickle
import pickletools
import random
import re
import shlex
import shutil
import struct
import sys
import tempfile
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandas.arrays  # noqa: F401  (so sys.modules['pandas.arrays'] exists)

SIGNED_HEADER = b"RDAGENT_SIGNED_PICKLE_V1\n"
TS_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"
DEFAULT_RUN_NAME = "2026-01-05_08-00-07-000000"

Scenario = Literal["fin_factor", "fin_quant"]
PathStyle = Literal["posix", "windows"]
Step = Literal["direct_exp_gen", "coding", "running", "feedback"]
STEPS: tuple[Step, ...] = ("direct_exp_gen", "coding", "running", "feedback")

# The classes a genuine trace references, by their real rdagent module path.
RDAGENT_CLASSES: dict[str, str] = {
    "Hypothesis": "rdagent.core.proposal",
    "HypothesisFeedback": "rdagent.core.proposal",
    "RunningInfo": "rdagent.core.experiment",
    "QlibQuantHypothesis": "rdagent.scenarios.qlib.proposal.quant_proposal",
    "FactorTask": "rdagent.components.coder.factor_coder.factor",
    "FactorFBWorkspace": "rdagent.components.coder.factor_coder.factor",
    "ModelTask": "rdagent.components.coder.model_coder.model",
    "ModelFBWorkspace": "rdagent.components.coder.model_coder.model",
    "QlibFactorExperiment": "rdagent.scenarios.qlib.experiment.factor_experiment",
    "QlibModelExperiment": "rdagent.scenarios.qlib.experiment.model_experiment",
    "QlibFBWorkspace": "rdagent.scenarios.qlib.experiment.workspace",
}


@dataclass(frozen=True)
class TracePaths:
    """Where a synthetic trace lives: ``root`` holds ``log/``, ``workspace/``, ``data/`` and the key file."""

    root: Path
    log_root: Path
    run_dir: Path
    workspace_root: Path
    key_file: Path | None


# --------------------------------------------------------------------------------------------------------------------
# Stand-in classes: present in sys.modules only while pickling, so the bytes name rdagent's real module paths.


def _make_class(name: str, module: str) -> type:
    return type(name, (), {"__module__": module, "__qualname__": name})


_CLASSES: dict[str, type] = {name: _make_class(name, mod) for name, mod in RDAGENT_CLASSES.items()}


@contextmanager
def _stand_ins() -> Iterator[None]:
    """Install throwaway modules for rdagent's paths; remove them afterwards (refuse if real rdagent is loaded)."""
    wanted: dict[str, types.ModuleType] = {}
    for name, mod in RDAGENT_CLASSES.items():
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            dotted = ".".join(parts[:i])
            wanted.setdefault(dotted, types.ModuleType(dotted, "tracegen stand-in"))
        setattr(wanted[mod], name, _CLASSES[name])
    clash = [m for m in wanted if m in sys.modules]
    if clash:
        raise RuntimeError(f"tracegen: module {clash[0]!r} is already imported; tracegen must not shadow rdagent")
    sys.modules.update(wanted)
    try:
        yield
    finally:
        for m in wanted:
            sys.modules.pop(m, None)


def _new(name: str, state: dict[str, Any]) -> Any:
    """An instance of a stand-in class whose __dict__ is exactly ``state`` (pickled as NEWOBJ + BUILD)."""
    obj = object.__new__(_CLASSES[name])
    obj.__dict__.update(state)
    return obj


class _PathRef:
    """Pickles as ``pathlib.PosixPath(*parts)`` or ``pathlib.WindowsPath(*parts)`` whatever OS writes it."""

    def __init__(self, cls_name: str, parts: tuple[str, ...]) -> None:
        self.cls_name = cls_name
        self.parts = parts

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        import pathlib

        return getattr(pathlib, self.cls_name), self.parts


# --------------------------------------------------------------------------------------------------------------------
# Signed pickles


def sign_payload(payload: bytes, key: bytes | None) -> bytes:
    """rdagent >= 1.0 file layout: header, HMAC-SHA256(key, payload), payload. ``key=None``: a plain pickle."""
    if key is None:
        return payload
    return SIGNED_HEADER + hmac.new(key, payload, hashlib.sha256).digest() + payload


def verify_signature(path: Path, key: bytes) -> bool:
    """True if ``path`` is a signed trace pickle whose HMAC matches ``key`` (for tests; reads bytes only)."""
    data = Path(path).read_bytes()
    if not data.startswith(SIGNED_HEADER) or len(data) < len(SIGNED_HEADER) + 32:
        return False
    sig = data[len(SIGNED_HEADER) : len(SIGNED_HEADER) + 32]
    return hmac.compare_digest(sig, hmac.new(key, data[len(SIGNED_HEADER) + 32 :], hashlib.sha256).digest())


# Where pandas 2.x (what rdagent 1.0 installs) defines the classes that pandas >= 3 re-homes to the top-level
# ``pandas`` namespace; genuine traces name these paths.
_PANDAS2_HOMES: tuple[tuple[str, str, str], ...] = (
    ("pandas", "DataFrame", "pandas.core.frame"),
    ("pandas", "Series", "pandas.core.series"),
    ("pandas", "Index", "pandas.core.indexes.base"),
    ("pandas", "DatetimeIndex", "pandas.core.indexes.datetimes"),
    ("pandas.arrays", "DatetimeArray", "pandas.core.arrays.datetimes"),
)

PandasGlobals = Literal["pandas2", "native"]


@contextmanager
def _pandas2_globals() -> Iterator[None]:
    """Make pandas >= 3 pickle its classes under pandas 2.x module paths, as genuine traces have them."""
    patched: list[tuple[type, str]] = []
    try:
        for public_mod, name, home in _PANDAS2_HOMES:
            cls = getattr(sys.modules[public_mod], name)
            if cls.__module__ != home and getattr(sys.modules.get(home), name, None) is cls:
                patched.append((cls, cls.__module__))
                cls.__module__ = home
        yield
    finally:
        for cls, mod in patched:
            cls.__module__ = mod


def _dump(obj: Any, pandas_globals: PandasGlobals = "pandas2") -> bytes:
    with _stand_ins():
        if pandas_globals == "pandas2":
            with _pandas2_globals():
                return pickle.dumps(obj, protocol=5)
        return pickle.dumps(obj, protocol=5)


# --------------------------------------------------------------------------------------------------------------------
# The shared data panel and factor/model specs


@dataclass(frozen=True)
class FactorSpec:
    name: str
    description: str
    formulation: str
    variables: dict[str, int]
    body: str  # pandas code that sets ``out`` from ``df`` (the daily_pv panel)


FACTORS: tuple[FactorSpec, ...] = (
    FactorSpec("Mom_Over_Vol_10D", "10-day return scaled by 15-day volatility of daily returns.",
               r"\frac{P_t/P_{t-10}-1}{\sigma_{15}(r)}", {"window": 10, "vol_window": 15},
               "g = df['$close'].groupby(level='instrument')\n"
               "vol = g.pct_change().groupby(level='instrument').transform(lambda s: s.rolling(15).std())\n"
               "out = g.pct_change(10) / vol"),
    FactorSpec("Volume_Ratio_5D", "Log of today's volume over its 5-day average.", r"\log(V_t/\bar V_5)",
               {"window": 5},
               "mv = df['$volume'].groupby(level='instrument').transform(lambda s: s.rolling(5).mean())\n"
               "out = np.log(df['$volume'] / mv)"),
    FactorSpec("Close_In_Range", "Position of the close within the day's high-low range.", r"\frac{C-L}{H-L+\epsilon}",
               {}, "out = (df['$close'] - df['$low']) / (df['$high'] - df['$low'] + 1e-12)"),
    FactorSpec("Short_Reversal_3D", "Cross-sectional rank of minus the 3-day return.",
               r"\mathrm{rank}_{cs}(-(P_t/P_{t-3}-1))", {"window": 3},
               "r3 = df['$close'].groupby(level='instrument').pct_change(3)\n"
               "out = (-r3).groupby(level='datetime').rank(pct=True)"),
    FactorSpec("Overnight_Gap", "Open over previous close, minus one.", r"O_t/C_{t-1}-1", {},
               "out = df['$open'] / df['$close'].groupby(level='instrument').shift(1) - 1"),
)
HARD_FACTORS: tuple[FactorSpec, ...] = (
    FactorSpec("Mom/Vol (10D, adj.)", "Same idea as Mom_Over_Vol_10D with a 20-day volatility window.",
               r"\frac{P_t/P_{t-10}-1}{\sigma_{20}(r)}", {"window": 10, "vol_window": 20},
               "g = df['$close'].groupby(level='instrument')\n"
               "vol = g.pct_change().groupby(level='instrument').transform(lambda s: s.rolling(20).std())\n"
               "out = g.pct_change(10) / vol"),
    FactorSpec("动量_5日", "5日收益率。", r"P_t/P_{t-5}-1", {"window": 5},
               "out = df['$close'].groupby(level='instrument').pct_change(5)"),
    FactorSpec("Close_In_Range", "Revised: range position averaged over 3 days.", r"\overline{(C-L)/(H-L)}_3",
               {"window": 3},
               "x = (df['$close'] - df['$low']) / (df['$high'] - df['$low'] + 1e-12)\n"
               "out = x.groupby(level='instrument').transform(lambda s: s.rolling(3).mean())"),
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    architecture: str
    hyperparameters: dict[str, str]
    training_hyperparameters: dict[str, str]
    model_type: str
    code: str


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("GRU_2L_20D", "Two-layer GRU over 20-day feature windows with a linear head.",
              "GRU(num_features, 32, layers=2) -> Linear(32, 1)", {"hidden_size": "32", "num_layers": "2"},
              {"n_epochs": "20", "lr": "0.001", "early_stop": "5", "batch_size": "256", "weight_decay": "0.0"},
              "TimeSeries",
              "import torch.nn as nn\n\n\nclass Net(nn.Module):\n"
              "    def __init__(self, num_features, num_timesteps=20):\n        super().__init__()\n"
              "        self.rnn = nn.GRU(num_features, 32, num_layers=2, batch_first=True)\n"
              "        self.head = nn.Linear(32, 1)\n\n    def forward(self, x):\n        out, _ = self.rnn(x)\n"
              "        return self.head(out[:, -1, :]).squeeze(-1)\n\n\nmodel_cls = Net\n"),
    ModelSpec("MLP_2L", "Two hidden layers on one day's features.", "Linear(d,64)-ReLU-Linear(64,1)",
              {"hidden": "64", "activation": "relu"},
              {"n_epochs": "40", "lr": "0.0005", "early_stop": "8", "batch_size": "1024", "weight_decay": "0.0001"},
              "Tabular",
              "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self, num_features):\n"
              "        super().__init__()\n        self.net = nn.Sequential(nn.Linear(num_features, 64), nn.ReLU(), "
              "nn.Linear(64, 1))\n\n    def forward(self, x):\n        return self.net(x).squeeze(-1)\n\n\n"
              "model_cls = Net\n"),
)

FACTOR_CODE = """import numpy as np
import pandas as pd


def calculate_{fn}():
    df = pd.read_hdf("daily_pv.h5", key="data")
{body}
    result = out.to_frame({name!r})
    result.to_hdf("result.h5", key="data")


if __name__ == "__main__":
    calculate_{fn}()
"""


def factor_code(spec: FactorSpec) -> str:
    """factor.py as an RD-Agent factor workspace holds it: reads daily_pv.h5, writes result.h5."""
    body = "\n".join("    " + line for line in spec.body.splitlines())
    return FACTOR_CODE.format(fn=re.sub(r"\W", "_", spec.name), body=body, name=spec.name)


N_DAYS, N_INSTRUMENTS = 60, 5


@lru_cache(maxsize=1)
def panel() -> pd.DataFrame:
    """The tiny shared daily_pv panel (60 business days x 5 instruments), fixed so caches can be shared."""
    rng = np.random.default_rng(20260105)
    dates = pd.bdate_range("2024-01-02", periods=N_DAYS)
    insts = [f"SH60{i:04d}" for i in range(N_INSTRUMENTS)]
    idx = pd.MultiIndex.from_product([dates, insts], names=["datetime", "instrument"])
    close = (np.exp(np.cumsum(rng.normal(0, 0.02, (N_DAYS, N_INSTRUMENTS)), axis=0)) * 10).ravel()
    opn = close * (1 + rng.normal(0, 0.005, close.size))
    high = np.maximum(opn, close) * (1 + np.abs(rng.normal(0, 0.004, close.size)))
    low = np.minimum(opn, close) * (1 - np.abs(rng.normal(0, 0.004, close.size)))
    cols = {"$close": close, "$open": opn, "$high": high, "$low": low,
            "$volume": rng.lognormal(13, 0.5, close.size), "$factor": np.ones(close.size)}
    return pd.DataFrame(cols, index=idx, columns=pd.Index(list(cols), dtype=object))


def factor_values(spec: FactorSpec) -> pd.DataFrame:
    """What factor.py computes on the shared panel (one column named after the factor)."""
    return _factor_values(spec.name, spec.body)


@lru_cache(maxsize=64)
def _factor_values(name: str, body: str) -> pd.DataFrame:
    ns: dict[str, Any] = {"df": panel(), "np": np, "pd": pd}
    exec(body, ns)  # our own factor bodies (FACTORS above), never trace content
    out = ns["out"]
    return out.to_frame(name)


def _hdf_bytes(df: pd.DataFrame) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.h5"
        df.to_hdf(p, key="data")
        return p.read_bytes()


@lru_cache(maxsize=1)
def _panel_h5() -> bytes:
    return _hdf_bytes(panel())


@lru_cache(maxsize=64)
def _result_h5(name: str, body: str) -> bytes:
    return _hdf_bytes(_factor_values(name, body))


@lru_cache(maxsize=256)
def _combined_parquet(specs: tuple[tuple[str, str], ...]) -> bytes:
    """combined_factors_df.parquet: the loop's factor values under a ("feature", name) column MultiIndex."""
    vals = pd.concat([_factor_values(name, body) for name, body in specs], axis=1)
    vals.columns = pd.MultiIndex.from_product([["feature"], [name for name, _ in specs]])
    buf = io.BytesIO()
    vals.to_parquet(buf)
    return buf.getvalue()


# Short stand-ins for RD-Agent's experiment templates (same file names; content written here, valid YAML).
_CONF = """qlib_init:
    provider_uri: "~/.qlib/qlib_data/cn_data"
    region: cn
market: &market csi300
benchmark: &benchmark SH000300
data_handler_config: &data_handler_config
    start_time: 2008-01-01
    end_time: 2020-08-01
    instruments: *market
task:
    model:
        class: {model_class}
        module_path: {model_module}
    dataset:
        class: DatasetH
        module_path: qlib.data.dataset
        kwargs:
            handler:
                class: {handler}
                module_path: qlib.contrib.data.handler
                kwargs: *data_handler_config
            segments:
                train: [2008-01-01, 2014-12-31]
                valid: [2015-01-01, 2016-12-31]
                test: [2017-01-01, 2020-08-01]
port_analysis_config:
    strategy:
        class: TopkDropoutStrategy
        module_path: qlib.contrib.strategy
        kwargs: {{topk: 50, n_drop: 5}}
    backtest:
        account: 100000000
        benchmark: *benchmark
        exchange_kwargs: {{deal_price: close, open_cost: 0.0005, close_cost: 0.0015, min_cost: 5}}
"""
_LGB = {"model_class": "LGBModel", "model_module": "qlib.contrib.model.gbdt"}
_NN = {"model_class": "GeneralPTNN", "model_module": "qlib.contrib.model.pytorch_general_nn"}
FACTOR_TEMPLATES: dict[str, str] = {
    "conf_baseline.yaml": _CONF.format(handler="Alpha158", **_LGB),
    "conf_combined_factors.yaml": _CONF.format(handler="DataHandlerLP", **_LGB),
    "conf_combined_factors_sota_model.yaml": _CONF.format(handler="DataHandlerLP", **_NN),
    "README.md": "Synthetic factor experiment workspace (tracegen): Qlib configs for baseline and combined factors.\n",
    "read_exp_res.py": "# tracegen stand-in: in RD-Agent this exports the recorder's metrics and portfolio report.\n"
                       "print('qlib_res.csv and the portfolio report are already in this folder')\n",
}
MODEL_TEMPLATES: dict[str, str] = {
    "conf_baseline_factors_model.yaml": _CONF.format(handler="Alpha158", **_NN),
    "conf_sota_factors_model.yaml": _CONF.format(handler="DataHandlerLP", **_NN),
    "README.md": "Synthetic model experiment workspace (tracegen): Qlib configs to train model.py.\n",
    "read_exp_res.py": FACTOR_TEMPLATES["read_exp_res.py"],
}

METRIC_NAMES = (
    "IC", "ICIR", "Rank IC", "Rank ICIR",
    "1day.excess_return_with_cost.annualized_return", "1day.excess_return_with_cost.information_ratio",
    "1day.excess_return_with_cost.max_drawdown", "1day.excess_return_with_cost.mean",
    "1day.excess_return_with_cost.std",
    "1day.excess_return_without_cost.annualized_return", "1day.excess_return_without_cost.information_ratio",
    "1day.excess_return_without_cost.max_drawdown", "1day.excess_return_without_cost.mean",
    "1day.excess_return_without_cost.std", "1day.ffr", "1day.pa", "1day.pos",
)
REPORT_COLUMNS = ("account", "return", "total_turnover", "turnover", "total_cost", "cost", "value", "cash", "bench")


# --------------------------------------------------------------------------------------------------------------------
# One loop's plan: everything derived deterministically from (seed, run_name, loop), so steps can be written separately.


@dataclass
class _LoopPlan:
    loop: int
    kind: Literal["factor", "model"]
    scenario: Scenario
    failed: bool
    factors: tuple[FactorSpec, ...]
    model: ModelSpec | None
    task_ws_ids: tuple[str, ...]
    exp_ws_id: str
    ic: float
    ann: float
    mdd: float
    report_seed: int


def _loop_rng(seed: int, run_name: str, loop: int) -> random.Random:
    return random.Random(f"{seed}|{run_name}|{loop}")


def _pool(hard: bool) -> tuple[FactorSpec, ...]:
    return FACTORS + HARD_FACTORS if hard else FACTORS


def _plan(loop: int, *, scenario: Scenario, seed: int, run_name: str, failed: bool, hard: bool) -> _LoopPlan:
    rng = _loop_rng(seed, run_name, loop)
    kind: Literal["factor", "model"] = "model" if scenario == "fin_quant" and loop % 3 == 2 else "factor"
    pool = _pool(hard)
    factors: tuple[FactorSpec, ...] = ()
    model = None
    if kind == "factor":
        n_new = 1 + loop % 2
        start = (loop * 3 // 2) % len(pool)  # walks the pool, so names come back in later loops
        factors = tuple(pool[(start + k) % len(pool)] for k in range(n_new))
        names = [f.name for f in factors]
        if len(set(names)) < len(names):
            factors = factors[:1]
    else:
        model = MODELS[(loop // 3) % len(MODELS)]
    n_ws = len(factors) if kind == "factor" else 1
    ids = tuple(uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(n_ws + 1))
    ic = rng.gauss(0.03, 0.01)
    ann = rng.gauss(0.08, 0.05)
    mdd = -abs(rng.gauss(0.12, 0.04))
    return _LoopPlan(loop, kind, scenario, failed, factors, model, ids[:-1], ids[-1], ic, ann, mdd, rng.getrandbits(32))


def _metrics(p: _LoopPlan) -> pd.Series:
    ic, ann, mdd = p.ic, p.ann, p.mdd
    vals = [ic, ic * 8, ic * 1.1, ic * 9, ann - 0.02, ann * 10 - 0.3, mdd - 0.01, (ann - 0.02) / 238, 0.006,
            ann, ann * 10, mdd, ann / 238, 0.006, 1.0, 0.0, 0.0]
    return pd.Series(vals, index=pd.Index(METRIC_NAMES, dtype=object), dtype="float64")


@lru_cache(maxsize=1)
def _bt_days() -> pd.DatetimeIndex:
    return pd.bdate_range("2024-01-02", periods=N_DAYS)[20:]


def _report(p: _LoopPlan) -> pd.DataFrame:
    """Qlib's report_normal_1day shape (ret.parquet / ret.pkl / the 'Quantitative Backtesting Chart' tag)."""
    days = _bt_days()
    rs = np.random.default_rng(p.report_seed)
    n = len(days)
    r = rs.normal(p.ann / 238 + 0.0003, 0.011, n)
    to = np.abs(rs.normal(0.1, 0.03, n))
    cost = to * 0.0015
    value = 1e8 * np.cumprod(1 + r - cost)
    data = [value, r, np.cumsum(to) * 1e8, to, np.cumsum(cost) * 1e8, cost, value * 0.95, value * 0.05,
            rs.normal(0.0003, 0.01, n)]
    return pd.DataFrame(dict(zip(REPORT_COLUMNS, data, strict=True)), index=pd.Index(days, name="datetime"),
                        columns=pd.Index(REPORT_COLUMNS, dtype=object))


# --------------------------------------------------------------------------------------------------------------------
# Building the rdagent-shaped objects


@dataclass
class _Ctx:
    paths: TracePaths
    key: bytes | None
    legacy: bool
    seed: int
    run_name: str
    pid: int
    style: PathStyle
    origin_root: str | None
    hard: bool
    pandas_globals: PandasGlobals = "pandas2"

    def ws_path(self, ws_id: str) -> _PathRef:
        if self.style == "windows":
            root = self.origin_root or r"C:\Users\quant\RD-Agent\git_ignore_folder\RD-Agent_workspace"
            return _PathRef("WindowsPath", PureWindowsPath(root, ws_id).parts)
        root = self.origin_root or str(self.paths.workspace_root)
        return _PathRef("PosixPath", PurePosixPath(root, ws_id).parts)


def _hypothesis(p: _LoopPlan) -> Any:
    if p.kind == "factor":
        text = f"Loop {p.loop}: " + " and ".join(f.name for f in p.factors) + " add signal beyond Alpha158."
    else:
        assert p.model is not None
        m = p.model
        text = f"Loop {p.loop}: a {m.model_type} model ({m.name}) uses the SOTA factors better than LightGBM."
    state: dict[str, Any] = {
        "hypothesis": text,
        "reason": "Momentum and liquidity effects are documented in A-shares.",
        "concise_reason": "documented effects",
        "concise_observation": "baseline IC is low",
        "concise_justification": "complementary information",
        "concise_knowledge": "If a factor is volatility adjusted, then it is more stable.",
    }
    if p.scenario == "fin_quant":
        state["action"] = p.kind
        return _new("QlibQuantHypothesis", state)
    return _new("Hypothesis", state)


def _tasks(p: _LoopPlan) -> list[Any]:
    if p.kind == "factor":
        out = []
        for f in p.factors:
            name = f.name
            out.append(_new("FactorTask", {
                "factor_name": name, "factor_formulation": f.formulation, "variables": dict(f.variables),
                "factor_resources": None, "factor_implementation": False, "version": 1, "name": name,
                "description": f.description, "user_instructions": None, "base_code": None}))
        return out
    m = p.model
    assert m is not None
    return [_new("ModelTask", {
        "formulation": None, "architecture": m.architecture, "variables": None,
        "hyperparameters": dict(m.hyperparameters), "training_hyperparameters": dict(m.training_hyperparameters),
        "model_type": m.model_type, "version": 1, "name": m.name, "description": m.description,
        "user_instructions": None, "base_code": None})]


def _running_info(result: Any = None) -> Any:
    return _new("RunningInfo", {"result": result, "running_time": None})


def _workspaces(p: _LoopPlan, ctx: _Ctx, tasks: list[Any]) -> list[Any]:
    out = []
    if p.kind == "factor":
        for task, spec, ws_id in zip(tasks, p.factors, p.task_ws_ids, strict=True):
            out.append(_new("FactorFBWorkspace", {
                "target_task": task, "feedback": None, "running_info": _running_info(),
                "file_dict": {"factor.py": factor_code(spec)}, "workspace_path": ctx.ws_path(ws_id),
                "ws_ckp": None, "change_summary": None, "raise_exception": False}))
    else:
        assert p.model is not None
        out.append(_new("ModelFBWorkspace", {
            "target_task": tasks[0], "feedback": None, "running_info": _running_info(),
            "file_dict": {"model.py": p.model.code}, "workspace_path": ctx.ws_path(p.task_ws_ids[0]),
            "ws_ckp": None, "change_summary": None}))
    return out


def _exp_files(p: _LoopPlan, *, with_model: bool) -> dict[str, str]:
    if p.kind == "factor":
        return dict(FACTOR_TEMPLATES)
    files = dict(MODEL_TEMPLATES)
    if with_model and p.model is not None:
        files["model.py"] = p.model.code
    return files


def _experiment(p: _LoopPlan, ctx: _Ctx, *, result: pd.Series | None, stdout: str, with_model: bool) -> Any:
    tasks = _tasks(p)
    exp_ws = _new("QlibFBWorkspace", {
        "target_task": None, "feedback": None, "running_info": _running_info(),
        "file_dict": _exp_files(p, with_model=with_model), "workspace_path": ctx.ws_path(p.exp_ws_id),
        "ws_ckp": None, "change_summary": None})
    state: dict[str, Any] = {
        "hypothesis": _hypothesis(p), "sub_tasks": tasks, "sub_workspace_list": _workspaces(p, ctx, tasks),
        "based_experiments": [], "experiment_workspace": exp_ws, "prop_dev_feedback": None,
        "running_info": _running_info(result), "sub_results": {}, "local_selection": None, "plan": None,
        "user_instructions": None, "stdout": stdout, "base_features": {}}
    if p.kind == "factor":
        state["base_feature_codes"] = {}
        return _new("QlibFactorExperiment", state)
    return _new("QlibModelExperiment", state)


def _feedback(p: _LoopPlan) -> Any:
    if p.failed:
        err = ("FactorEmptyError: Factor extraction failed." if p.kind == "factor" else
               f"ModelEmptyError: Failed to run {p.model.name if p.model else '?'} model, "
               "because Qlib_execute_log shows CUDA out of memory")
        empty = ""
        return _new("HypothesisFeedback", {
            "decision": False, "eda_improvement": None, "reason": empty,
            "exception": None, "code_change_summary": empty, "observations": err, "hypothesis_evaluation": empty,
            "new_hypothesis": empty, "acceptable": None})
    decision = p.ic > 0.03
    return _new("HypothesisFeedback", {
        "decision": decision, "eda_improvement": None, "reason": f"IC {p.ic:.4f} vs SOTA 0.0300.", "exception": None,
        "code_change_summary": "", "observations": f"annualized return {p.ann:.3f}, max drawdown {p.mdd:.3f}",
        "hypothesis_evaluation": "supported" if decision else "not supported",
        "new_hypothesis": "Try a longer volatility window.", "acceptable": decision})


# --------------------------------------------------------------------------------------------------------------------
# Writing files


_STEP_OFFSETS = {  # seconds after the loop's start, in RD-Agent's order of logging
    ("direct_exp_gen", "hypothesis generation"): 0.1,
    ("direct_exp_gen", "experiment generation"): 0.2,
    ("coding", "evolving code"): 30.0,
    ("coding", "coder result"): 30.1,
    ("running", "Qlib_execute_log"): 60.0,
    ("running", "Quantitative Backtesting Chart"): 60.1,
    ("running", "runner result"): 60.2,
    ("feedback", "feedback"): 61.0,
}


def _run_start(run_name: str) -> datetime:
    try:
        return datetime.strptime(run_name, TS_FORMAT)
    except ValueError:
        return datetime(2026, 1, 5, 8, 0, 0)


def _write_tag(ctx: _Ctx, loop: int | None, step: str | None, tag: str, obj: Any, when: datetime) -> Path:
    d = ctx.paths.run_dir
    if loop is not None:
        d = d / f"Loop_{loop}" / str(step)
    d = d / tag / str(ctx.pid)
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{when.strftime(TS_FORMAT)}.pkl"
    f.write_bytes(sign_payload(_dump(obj, ctx.pandas_globals), None if ctx.legacy else ctx.key))
    return f


def _log(ctx: _Ctx, p: _LoopPlan, step: str, tag: str, obj: Any) -> Path:
    when = _run_start(ctx.run_name) + timedelta(minutes=2 * p.loop, seconds=_STEP_OFFSETS[(step, tag)])
    return _write_tag(ctx, p.loop, step, tag, obj, when)


def _link_panel(ws_dir: Path, workspace_root: Path) -> None:
    link = ws_dir / "daily_pv.h5"
    if not link.is_symlink() and not link.exists():
        rel = os.path.relpath(workspace_root.parent / "data" / "daily_pv.h5", ws_dir)
        link.symlink_to(rel)


def _write_files(ws_dir: Path, files: dict[str, str | bytes]) -> None:
    ws_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        f = ws_dir / name
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content, encoding="utf-8")


def _write_direct_exp_gen(ctx: _Ctx, p: _LoopPlan) -> list[Path]:
    # RD-Agent creates the experiment workspace (template files) when the experiment object is built.
    _write_files(ctx.paths.workspace_root / p.exp_ws_id, dict(_exp_files(p, with_model=False)))
    return [_log(ctx, p, "direct_exp_gen", "hypothesis generation", _hypothesis(p)),
            _log(ctx, p, "direct_exp_gen", "experiment generation", _tasks(p))]


def _write_coding(ctx: _Ctx, p: _LoopPlan) -> list[Path]:
    root = ctx.paths.workspace_root
    if p.kind == "factor":
        for spec, ws_id in zip(p.factors, p.task_ws_ids, strict=True):
            ws = root / ws_id
            _write_files(ws, {"factor.py": factor_code(spec), "result.h5": _result_h5(spec.name, spec.body)})
            _link_panel(ws, root)
        if not p.failed:
            combined = _combined_parquet(tuple((f.name, f.body) for f in p.factors))
            _write_files(root / p.exp_ws_id, {"combined_factors_df.parquet": combined})
    else:
        assert p.model is not None
        _write_files(root / p.task_ws_ids[0], {"model.py": p.model.code})
    tasks = _tasks(p)
    ws_list = _workspaces(p, ctx, tasks)
    coder = _experiment(p, ctx, result=None, stdout="", with_model=False) if p.scenario == "fin_quant" else ws_list
    out = [_log(ctx, p, "coding", "evolving code", ws_list), _log(ctx, p, "coding", "coder result", coder)]
    if p.kind == "model":
        _write_files(root / p.exp_ws_id, _exp_files(p, with_model=True))
    return out


def _write_running(ctx: _Ctx, p: _LoopPlan) -> list[Path]:
    if p.failed:
        return []
    wp = ctx.paths.workspace_root / p.exp_ws_id
    wp.mkdir(parents=True, exist_ok=True)
    metrics = _metrics(p)
    metrics.to_csv(wp / "qlib_res.csv")
    report = _report(p)
    out: list[Path] = []
    if ctx.legacy:
        report.to_pickle(wp / "ret.pkl")
    else:
        report.to_parquet(wp / "ret.parquet")
        log_text = "\n".join(f"Epoch{i}: train -{0.99 - i / 100:.4f}, valid -{0.995 - i / 120:.4f}" for i in range(3))
        out.append(_log(ctx, p, "running", "Qlib_execute_log", log_text))
        out.append(_log(ctx, p, "running", "Quantitative Backtesting Chart", report))
    stdout = "Epoch0: train -0.9900, valid -0.9950" if p.kind == "model" else ""
    exp = _experiment(p, ctx, result=metrics, stdout=stdout, with_model=True)
    out.append(_log(ctx, p, "running", "runner result", exp))
    return out


def _write_feedback(ctx: _Ctx, p: _LoopPlan) -> list[Path]:
    return [_log(ctx, p, "feedback", "feedback", _feedback(p))]


_WRITERS = {"direct_exp_gen": _write_direct_exp_gen, "coding": _write_coding, "running": _write_running,
            "feedback": _write_feedback}


def trace_paths(out_dir: Path, *, run_name: str = DEFAULT_RUN_NAME, key: bytes | None = b"k" * 32,
                legacy: bool = False) -> TracePaths:
    """The paths of a trace written (or to be written) with these arguments."""
    root = Path(out_dir)
    log_root = root / "log"
    key_file = None if legacy or key is None else root / "artifact_signing.key"
    return TracePaths(root, log_root, log_root / run_name, root / "workspace", key_file)


def _prepare(out_dir: Path, run_name: str, key: bytes | None, legacy: bool, pid: int, style: PathStyle,
             origin_root: str | None, seed: int, hard: bool, pandas_globals: PandasGlobals) -> _Ctx:
    paths = trace_paths(out_dir, run_name=run_name, key=key, legacy=legacy)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    paths.workspace_root.mkdir(parents=True, exist_ok=True)
    data = paths.root / "data" / "daily_pv.h5"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_bytes(_panel_h5())
    if paths.key_file is not None and key is not None:
        paths.key_file.write_bytes(key)
    return _Ctx(paths, key, legacy, seed, run_name, pid, style, origin_root, hard, pandas_globals)


def _write_debug_tpl(ctx: _Ctx) -> None:
    tpl = {"uri": "scenarios.qlib.prompts:hypothesis_gen.system", "template": "{{ scenario }}", "context": {},
           "rendered": "You are a quantitative researcher."}
    _write_tag(ctx, None, None, "debug_tpl", tpl, _run_start(ctx.run_name) - timedelta(seconds=1))


def append_step(out_dir: Path, loop: int, step: Step, *, scenario: Scenario = "fin_factor",
                key: bytes | None = b"k" * 32, legacy: bool = False, failed: bool = False, seed: int = 0,
                run_name: str = DEFAULT_RUN_NAME, workspace_path_style: PathStyle = "posix", pid: int = 4242,
                origin_root: str | None = None, hard: bool = False,
                pandas_globals: PandasGlobals = "pandas2") -> list[Path]:
    """Write one step of one loop (its log pickles and workspace files); returns the pickles written.

    A test can leave a loop "still running" (``direct_exp_gen`` + ``coding`` only) and add ``running`` and
    ``feedback`` later; the loop's content depends only on (seed, run_name, loop), so the steps agree with each other
    and with ``write_trace``. ``failed`` makes it the failing kind of loop (the running step then writes nothing).
    """
    if step not in _WRITERS:
        raise ValueError(f"append_step: step must be one of {STEPS}, got {step!r}")
    ctx = _prepare(out_dir, run_name, key, legacy, pid, workspace_path_style, origin_root, seed, hard, pandas_globals)
    p = _plan(loop, scenario=scenario, seed=seed, run_name=run_name, failed=failed, hard=hard)
    return _WRITERS[step](ctx, p)


def write_trace(out_dir: Path, *, loops: int = 4, scenario: Scenario = "fin_factor", key: bytes | None = b"k" * 32,
                legacy: bool = False, fail_last: bool = True, seed: int = 0, run_name: str = DEFAULT_RUN_NAME,
                start_loop: int = 0, workspace_path_style: PathStyle = "posix", pid: int = 4242,
                origin_root: str | None = None, hard: bool = False,
                pandas_globals: PandasGlobals = "pandas2") -> TracePaths:
    """Write loops ``start_loop .. start_loop+loops-1`` of an RD-Agent trace under ``out_dir``.

    - ``key``: signs every pickle (rdagent >= 1.0) and is saved as ``artifact_signing.key``; ``None`` writes plain
      pickles but otherwise the 1.0 layout.
    - ``legacy``: older RD-Agent: plain pickles, ``ret.pkl`` instead of ``ret.parquet``, no ``Qlib_execute_log`` /
      ``Quantitative Backtesting Chart`` tags, no key file (``key`` is ignored).
    - ``fail_last``: the last loop written fails (factor loop: at the factor stage; fin_quant model loop: at running),
      leaving a feedback with the error and no runner result.
    - ``scenario="fin_quant"``: ``QlibQuantHypothesis`` with ``action``; every third loop (``loop % 3 == 2``) is a
      model loop; the "coder result" tag holds the whole experiment (in fin_factor, the list of workspaces).
    - ``workspace_path_style``/``origin_root``: how the pickled ``workspace_path`` looks. Default: the real
      ``out_dir/workspace/<id>`` (a trace read where it was written); ``origin_root="/home/quant/RD-Agent/workspace"``
      simulates a trace copied from another machine; ``"windows"`` pickles ``pathlib.WindowsPath`` parts.
    - ``hard``: add awkward factor names (unicode, spaces, slash, parentheses) and a name reused with new code.
    - ``pandas_globals``: ``"pandas2"`` (default) names pandas classes by their pandas 2.x paths
      (``pandas.core.frame.DataFrame``), as traces from rdagent 1.0 installs do; ``"native"`` keeps what the installed
      pandas writes (pandas >= 3: ``pandas.DataFrame``), to test readers against newer installs.
    - ``start_loop`` with the same ``run_name`` and ``seed`` appends loops to an existing trace.
    """
    ctx = _prepare(out_dir, run_name, key, legacy, pid, workspace_path_style, origin_root, seed, hard, pandas_globals)
    if start_loop == 0:
        _write_debug_tpl(ctx)
    last = start_loop + loops - 1
    for li in range(start_loop, start_loop + loops):
        p = _plan(li, scenario=scenario, seed=seed, run_name=run_name, failed=fail_last and li == last, hard=hard)
        for step in STEPS:
            _WRITERS[step](ctx, p)
    return ctx.paths


def loop_workspace_ids(loop: int, *, scenario: Scenario = "fin_factor", seed: int = 0,
                       run_name: str = DEFAULT_RUN_NAME, hard: bool = False) -> dict[str, Any]:
    """The workspace ids a loop uses: ``{"tasks": [...], "experiment": id, "factors": [names] | "model": name}``."""
    p = _plan(loop, scenario=scenario, seed=seed, run_name=run_name, failed=False, hard=hard)
    info: dict[str, Any] = {"tasks": list(p.task_ws_ids), "experiment": p.exp_ws_id, "kind": p.kind}
    if p.kind == "factor":
        info["factors"] = [f.name for f in p.factors]
    else:
        info["model"] = p.model.name if p.model else None
    return info


# --------------------------------------------------------------------------------------------------------------------
# Corruption helpers (for ingest error-path tests)


def _payload_start(data: bytes) -> int:
    return len(SIGNED_HEADER) + 32 if data.startswith(SIGNED_HEADER) else 0


def truncate_pickle(path: Path, keep: float = 0.5) -> None:
    """Cut the file (signed or plain) to ``keep`` of its payload, as a crash mid-write would leave it."""
    data = Path(path).read_bytes()
    start = _payload_start(data)
    cut = start + max(1, int((len(data) - start) * keep))
    Path(path).write_bytes(data[: min(cut, len(data) - 1)])


def tamper_pickle(path: Path) -> int:
    """Change one letter of the payload's longest text value, keeping header and signature: still a well-formed
    pickle naming the same globals and keys (so an allow-list passes it), but its HMAC no longer matches.
    Returns the file offset of the changed byte."""
    data = bytearray(Path(path).read_bytes())
    start = _payload_start(bytes(data))
    ops = [(op.name, arg, int(pos or 0)) for op, arg, pos in pickletools.genops(bytes(data[start:]))]
    value_ops = [o for o in ops if o[0] not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT")]
    candidates: list[tuple[int, str, int]] = []
    for i, (name, arg, pos) in enumerate(value_ops):
        if name not in ("SHORT_BINUNICODE", "BINUNICODE") or not isinstance(arg, str):
            continue
        nxt = [o[0] for o in value_ops[i + 1 : i + 3]]
        if nxt[:1] == ["STACK_GLOBAL"] or nxt[1:2] == ["STACK_GLOBAL"]:
            continue  # a module or class name: changing it would change a global, not a value
        head = 1 + (1 if name == "SHORT_BINUNICODE" else 4)
        candidates.append((len(arg), arg, pos + head))
    for _, text, body_pos in sorted(candidates, reverse=True):
        raw = text.encode("utf-8")
        for i, b in enumerate(raw):
            if 65 <= b <= 90 or 97 <= b <= 122:  # flip the case of an ASCII letter: stays valid UTF-8
                off = start + body_pos + i
                data[off] ^= 0x20
                Path(path).write_bytes(bytes(data))
                return off
    off = len(data) - 2  # no text value: flip the byte before STOP
    data[off] ^= 0x01
    Path(path).write_bytes(bytes(data))
    return off


def write_forbidden_pickle(path: Path, key: bytes | None, cmd_marker: Path) -> None:
    """A pickle that, if unpickled, calls ``os.system("touch <cmd_marker>")``; signed with ``key`` (if given) so only
    an allow-list stops it. Built from opcodes by hand; nothing here runs the command."""
    cmd = f"touch {shlex.quote(str(cmd_marker))}".encode()

    def s(text: bytes) -> bytes:
        return (b"\x8c" + bytes([len(text)]) + text if len(text) < 256
                else b"X" + struct.pack("<I", len(text)) + text)

    payload = b"\x80\x05" + s(b"os") + s(b"system") + b"\x93" + s(cmd) + b"\x85" + b"R" + b"."
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(sign_payload(payload, key))


def remove_workspace(paths: TracePaths, workspace_id: str) -> None:
    """Delete one workspace folder, as a user cleaning disk space would."""
    shutil.rmtree(paths.workspace_root / workspace_id)


def write_non_utf8_code(workspace_dir: Path, name: str = "factor.py") -> Path:
    """Overwrite the workspace's code file with bytes that are not valid UTF-8 (a Latin-1 comment)."""
    f = Path(workspace_dir) / name
    f.write_bytes(b"# -*- coding: latin-1 -*-\n# r\xe9sum\xe9 \xff\xfe\nimport pandas as pd\n")
    return f


def chmod_blocks_reads() -> bool:
    """Whether ``chmod 000`` makes a file unreadable here: False for root (tests run as root on these machines)."""
    return os.geteuid() != 0 if hasattr(os, "geteuid") else True


def make_unreadable(path: Path, how: Literal["auto", "chmod", "directory", "dangling_symlink"] = "auto") -> str:
    """Make ``path`` fail to read; returns the method used.

    ``chmod`` (mode 000) does not stop root, so ``auto`` picks it only when it works and otherwise replaces the file
    by a directory of the same name (reading gives IsADirectoryError). ``dangling_symlink`` replaces it by a link to
    a missing target (FileNotFoundError).
    """
    p = Path(path)
    if how == "auto":
        how = "chmod" if chmod_blocks_reads() else "directory"
    if how == "chmod":
        p.chmod(0)
    elif how == "directory":
        p.unlink()
        p.mkdir()
    elif how == "dangling_symlink":
        p.unlink()
        p.symlink_to(p.with_name(p.name + ".missing-target"))
    else:
        raise ValueError(f"make_unreadable: unknown method {how!r}")
    return how
