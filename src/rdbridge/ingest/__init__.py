"""Ingest: RD-Agent's own log trace and workspaces into the registry (`ingest()`); see `service` for the rules."""

from rdbridge.ingest.service import IngestInputError, ingest

__all__ = ["IngestInputError", "ingest"]
