"""Materialize: each finished loop's documents and charts into the artifact store, registered in the registry.

`materialize(db_url=..., scope=...)` runs the workers (see `service`); `refresh_factor_meta(db_url, experiment_ids)`
rebuilds factor_meta.json (and summary / manifest) of done loops from the registry, for the factor package's promotion.
Documents are the pydantic models of `rdbridge.contracts.artifacts`.
"""

from rdbridge.materialize.errors import LoopInputError
from rdbridge.materialize.refresh import refresh_factor_meta
from rdbridge.materialize.service import MaterializeInputError, materialize

__all__ = ["LoopInputError", "MaterializeInputError", "materialize", "refresh_factor_meta"]
