"""The manifest of an `rdbridge engine compute` output: written last, so its presence says the output is complete."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "_manifest.json"


class PartitionFile(BaseModel):
    """One file of a partitioned output: its instruments' rows, sorted by (instrument, datetime)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Path relative to the dataset directory.")
    instruments: int = Field(ge=0)
    rows: int = Field(ge=0)


class EngineJobManifest(BaseModel):
    """What a complete output holds; readers must ignore a dataset directory without it."""

    model_config = ConfigDict(extra="forbid")

    complete: bool = Field(description="Always true: the manifest is written only after every partition.")
    rows: int = Field(ge=0)
    factors: list[str]
    dtype: str = Field(description="float32 (Qlib's output dtype, the default) or float64 (--float64).")
    partitions: list[PartitionFile]
    cross_section_stages: int = Field(ge=0, description="Date-wise passes the request needed.")
    executor: str = Field(description="local, or dask:<scheduler address>.")
    seconds: float = Field(ge=0)
