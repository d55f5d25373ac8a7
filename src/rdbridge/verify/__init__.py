"""Equivalence verification: a platform implementation (Qlib expression or Python function) against the reference
function of ``rd_factors_lib`` at one version, on a standard seeded panel, with a recorded verdict."""
