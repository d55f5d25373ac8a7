"""The five catalogs: what the platform syncs (factors, strategies, loops, models, Alpha158 metadata).

Each exported file is `{version, generated_at_utc, source, <list>}` (the `*Catalog` documents); the API serves the
same entries page by page. Fields the registry cannot fill yet (materialize's factor_meta / model_meta /
strategy documents, the factor package's impl_* pointers) are present and null, so consumers code against the
final shape now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CATALOG_VERSION = 1
FactorSource = Literal["alpha158", "package", "rdagent"]
Alpha158Group = Literal["kbar", "price", "volume", "rolling"]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArtifactRef(_Entry):
    artifact_id: int
    artifact_type: str
    name: str
    status: str
    file_count: int


class FactorEntry(_Entry):
    """One factor: an Alpha158 definition, a curated package factor or an RD-Agent implementation."""

    id: str = Field(description="`<source>:<key>`: unique and stable across exports.")
    name: str
    source: FactorSource
    description: str | None = None
    expression: str | None = Field(None, description="Qlib expression (Alpha158).")
    formula_hint: str | None = Field(None, description="The LLM's formulation (RD-Agent factors).")
    variables: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    region: str | None = None
    freq: str | None = None
    align: str | None = None
    nan_policy: str | None = None
    best_metrics: dict[str, Any] | None = None
    experiment_id: str | None = None
    factor_id: str | None = None
    code_sha256: str | None = None
    created_at_utc: datetime | None = None
    updated_at_utc: datetime | None = None
    impl_module: str | None = None
    impl_func: str | None = None
    impl_version: str | None = None


class LoopEntry(_Entry):
    task_run_id: str
    loop_id: int
    experiment_id: str
    action: str
    status: str
    has_result: bool
    key_metrics: dict[str, Any]
    decision: bool | None
    hypothesis: str | None
    materialization_status: str | None
    materialization_error: str | None
    updated_at_utc: datetime
    artifacts: list[ArtifactRef]


class StrategyLoop(_Entry):
    experiment_id: str
    decision: bool | None
    key_metrics: dict[str, Any]


class StrategyConfigFile(_Entry):
    path: str
    sha256: str
    file_id: int


class StrategyEntry(_Entry):
    """One distinct strategy configuration: the loops whose experiment workspace ran the same config files.

    Materialized loops are grouped by their strategy.json parameters; loops not materialized yet by the content
    hashes of their config files.
    """

    strategy_id: str
    identified_by: Literal["strategy.json", "config files"] = Field(
        description="strategy.json: loops with equal parsed parameters; config files: byte-identical conf*.yaml "
                    "(loops not materialized yet).")
    config_files: list[StrategyConfigFile] = Field(
        description="The Qlib config files of the loops' experiment workspaces (for strategy.json entries: the one "
                    "each document was read from).")
    params: dict[str, Any] | None = Field(None, description="strategy.json without its experiment_id / config_file "
                                          "(strategy class, topk, n_drop, benchmark, costs, backtest window).")
    loops: list[StrategyLoop]
    updated_at_utc: datetime


class ModelEntry(_Entry):
    """One model task of a loop; the Qlib side (class, kwargs, features, segments) from the loop's model_meta.json,
    null until materialize wrote it."""

    task_run_id: str
    loop_id: int
    experiment_id: str
    task_index: int
    name: str
    model_class: str | None = Field(description="The Qlib model class the loop's config runs (model_meta.json).")
    model_module: str | None = Field(None, description="Its module_path (model_meta.json).")
    model_type: str | None = Field(None, description="RD-Agent's model_type (e.g. TimeSeries, Tabular).")
    architecture: str | None
    kwargs: dict[str, Any] | None = Field(description="The model's kwargs as the config passes them "
                                          "(model_meta.json).")
    hyperparameters: dict[str, Any] | None = Field(None, description="The task's hyperparameters (RD-Agent).")
    training_kwargs: dict[str, Any] | None = Field(description="The task's training hyperparameters (RD-Agent).")
    config_file: str | None = Field(None, description="The conf*.yaml model_meta.json was read from.")
    dataset_class: str | None = None
    handler_class: str | None = None
    label: list[str] | None = None
    features: list[str] | None = Field(None, description="From materialize's model_meta.json.")
    segments: dict[str, Any] | None = Field(None, description="From materialize's model_meta.json.")
    materialized: bool = Field(False, description="Whether model_meta.json was found (else the Qlib fields are "
                                                  "null).")
    metrics: dict[str, Any] | None
    decision: bool | None
    updated_at_utc: datetime


class Alpha158Entry(_Entry):
    name: str
    expression: str
    group: Alpha158Group
    family: str
    window: int | None
    description: str
    impl_pointer: str = Field(description="Where the factor package implements it: `rd_factors_lib.alpha158:<name>`.")


class _Doc(_Entry):
    version: int = CATALOG_VERSION
    generated_at_utc: datetime
    source: str = Field(description="What the catalog was built from (registry backend and schema revision).")


class FactorCatalog(_Doc):
    factors: list[FactorEntry]


class StrategyCatalog(_Doc):
    strategies: list[StrategyEntry]


class LoopCatalog(_Doc):
    loops: list[LoopEntry]


class ModelCatalog(_Doc):
    models: list[ModelEntry]


class Alpha158Meta(_Doc):
    factors: list[Alpha158Entry]


CATALOG_FILES: dict[str, type[_Doc]] = {
    "factor_catalog.json": FactorCatalog,
    "strategy_catalog.json": StrategyCatalog,
    "loop_catalog.json": LoopCatalog,
    "model_catalog.json": ModelCatalog,
    "alpha158_meta.json": Alpha158Meta,
}
"""Exported file name -> its document model (whose JSON Schema `rdbridge catalog schema` prints)."""
