"""The shared factor package ``rd_factors_lib``: scaffold, safe AST promotion of RD-Agent factors, versions,
immutable snapshots and bundles. Never imported by the API process (it runs LLM-written code in subprocesses)."""
