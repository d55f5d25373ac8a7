"""The documents `rdbridge materialize` writes per loop into the artifact store, and its `--json` report.

One definition per document, reused by the Results API and the platform sync. Every document carries
`schema_version` and the loop's `experiment_id`. Timestamps come from the registry, never from the clock, so a
re-materialization of an unchanged loop writes the same bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

DOCUMENT_NAMES = ("factor_meta.json", "factor_perf.json", "feedback.json", "model_meta.json", "strategy.json",
                  "ret_curve.png", "dd_curve.png", "summary.json", "manifest.json")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------- factor_meta


class InterfaceInfo(_Doc):
    """How the factor code talks to its data: the panel fields it reads, the index, what it writes."""

    input_fields: list[str] = Field(description="Qlib fields the code reads, e.g. ['$close', '$volume'].")
    index: list[str] = Field(default_factory=lambda: ["datetime", "instrument"])
    output: str = Field(default="result.h5 (key 'data'): one float column named after the factor")


class FactorMetaRecord(_Doc):
    name: str = Field(description="The factor name exactly as RD-Agent's LLM wrote it (any language).")
    factor_id: str | None = Field(description="sha256(name, code)[:16]; None when the code is not on this machine.")
    source: Literal["rdagent_generated"] = "rdagent_generated"
    description: str | None = None
    formula_hint: str | None = Field(default=None, description="RD-Agent's factor_formulation (LaTeX or prose).")
    variables: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    region: str | None = Field(default=None, description="Qlib region of the backtest config (e.g. 'cn').")
    freq: Literal["day"] = "day"
    align: Literal["close"] = Field(default="close", description="A value at date t uses data up to t's close.")
    nan_policy: Literal["keep"] = Field(default="keep", description="NaN stays NaN (no fill); consumers drop it.")
    interface_info: InterfaceInfo
    experiment_id: str
    created_at_utc: datetime | None = Field(description="When the registry first saw this implementation.")
    code_sha256: str | None
    workspace_id: str | None
    impl_module: str | None = Field(default=None, description="Set once the factor is promoted to rd_factors_lib.")
    impl_func: str | None = None
    impl_version: str | None = None


class FactorMeta(_Doc):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    factors: list[FactorMetaRecord]


# ---------------------------------------------------------------------------------------------------- factor_perf


class KeyMetrics(_Doc):
    """The headline backtest metrics; each field's Qlib name is in its description (None when Qlib gave none)."""

    ic: float | None = Field(default=None, description="IC")
    icir: float | None = Field(default=None, description="ICIR")
    rank_ic: float | None = Field(default=None, description="Rank IC")
    rank_icir: float | None = Field(default=None, description="Rank ICIR")
    annualized_return_with_cost: float | None = Field(
        default=None, description="1day.excess_return_with_cost.annualized_return")
    information_ratio_with_cost: float | None = Field(
        default=None, description="1day.excess_return_with_cost.information_ratio")
    max_drawdown_with_cost: float | None = Field(default=None, description="1day.excess_return_with_cost.max_drawdown")
    annualized_return_without_cost: float | None = Field(
        default=None, description="1day.excess_return_without_cost.annualized_return")
    information_ratio_without_cost: float | None = Field(
        default=None, description="1day.excess_return_without_cost.information_ratio")
    max_drawdown_without_cost: float | None = Field(
        default=None, description="1day.excess_return_without_cost.max_drawdown")


class SeriesStats(_Doc):
    """Statistics of a daily series (IC or rank IC): mean, std (ddof 1), IR = mean / std, t = IR * sqrt(n)."""

    mean: float | None
    std: float | None
    ir: float | None
    t_stat: float | None
    n_days: int


class FactorStats(_Doc):
    """Single-factor statistics of one factor's result.h5 against forward returns (Alphalens vocabulary)."""

    name: str
    factor_id: str | None
    status: Literal["ok", "no_result", "no_forward_returns"] = Field(
        description="ok; no_result: the workspace has no result.h5; no_forward_returns: no daily_pv.h5 found.")
    note: str | None = None
    n_rows: int = 0
    n_dates: int = 0
    n_instruments: int = 0
    coverage: float | None = Field(default=None, description="Share of (date, instrument) rows with a finite value.")
    ic: SeriesStats | None = None
    rank_ic: SeriesStats | None = None
    autocorrelation: float | None = Field(
        default=None, description="Mean daily rank correlation of the factor with its previous day's value.")
    turnover: float | None = Field(
        default=None, description="Mean share of the top quantile's instruments that were not in it the day before.")
    quantile_returns: list[float | None] = Field(
        default_factory=list, description="Mean forward return of each quantile (1 = lowest factor value).")
    top_minus_bottom: float | None = None


class FactorPerf(_Doc):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    metrics: dict[str, float] = Field(description="Every backtest metric, keyed by Qlib's own name.")
    metrics_source: str | None = None
    key_metrics: KeyMetrics
    forward_return: str = Field(description="The forward return the factor statistics use, as a Qlib expression.")
    quantiles: int
    factors: list[FactorStats]


# ---------------------------------------------------------------------------------------------------- feedback


class FeedbackDoc(_Doc):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    decision: bool | None
    reason: str | None = None
    observations: str | None = None
    hypothesis_evaluation: str | None = None
    new_hypothesis: str | None = None
    code_change_summary: str | None = None
    exception: str | None = None
    hypothesis: str | None = None
    justification: str | None = Field(default=None, description="RD-Agent's concise_justification / reason.")
    action: str | None = Field(default=None, description="fin_quant: factor or model.")


# ---------------------------------------------------------------------------------------------------- model / strategy


class ModelTaskMeta(_Doc):
    name: str
    description: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_hyperparameters: dict[str, Any] = Field(default_factory=dict)
    workspace_id: str | None = None


class ModelMeta(_Doc):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    config_file: str | None = Field(description="The conf*.yaml of the experiment workspace this was read from.")
    model_class: str | None = None
    model_module: str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    dataset_class: str | None = None
    handler_class: str | None = None
    segments: dict[str, list[Any]] = Field(default_factory=dict)
    data_loaders: list[str] = Field(default_factory=list)
    label: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list, description="Columns of combined_factors_df.parquet.")
    tasks: list[ModelTaskMeta] = Field(default_factory=list)


class StrategyDoc(_Doc):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    config_file: str
    strategy_class: str | None = None
    strategy_module: str | None = None
    topk: int | None = None
    n_drop: int | None = None
    benchmark: str | None = None
    market: str | None = None
    account: float | None = None
    open_cost: float | None = None
    close_cost: float | None = None
    min_cost: float | None = None
    limit_threshold: float | None = None
    deal_price: str | None = None
    backtest_start: str | None = None
    backtest_end: str | None = None


# ---------------------------------------------------------------------------------------------------- summary, manifest


class SummaryFactor(_Doc):
    name: str
    factor_id: str | None


class Summary(_Doc):
    """The loop at a glance: what one catalog row needs."""

    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    task_run_id: str
    loop_id: int
    scenario: str | None
    action: str
    status: str
    decision: bool | None
    hypothesis: str | None
    has_result: bool
    key_metrics: KeyMetrics | None
    factors: list[SummaryFactor]
    models: list[str]
    best_workspace_id: str | None
    experiment_workspace_id: str | None
    started_at_utc: datetime | None
    source_fingerprint: str | None = Field(description="The ingest fingerprint of the trace these were built from.")
    documents: list[str] = Field(description="The other files of the set (manifest.json lists them with hashes).")


class ManifestFile(_Doc):
    name: str
    size_bytes: int
    sha256: str
    mime_type: str


class Manifest(_Doc):
    """Every file of a loop's set; written last, so its presence means the set is complete."""

    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    source_fingerprint: str | None
    files: list[ManifestFile]


# ---------------------------------------------------------------------------------------------------- report


class MaterializeFailure(_Doc):
    experiment_id: str
    error: str


class MaterializeCounts(_Doc):
    done: int = 0
    failed: int = 0
    skipped: int = Field(default=0, description="Loops in scope already done (left as they are without --force).")


class MaterializeReport(_Doc):
    """What `rdbridge materialize --json` prints."""

    ok: bool
    db: str
    scope: str
    workers: int
    force: bool
    counts: MaterializeCounts
    seconds: float
    failures: list[MaterializeFailure] = Field(default_factory=list)
    artifact_root: str
    cpu_seconds: float | None = Field(
        default=None, description="CPU time (user + system) of this process and of its worker processes while "
                                  "materializing (not the fork server's one-time imports).")
