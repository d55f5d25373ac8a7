"""Fixtures of the rdagent_trace tests (the helpers live in rdtrace_helpers.py)."""

from rdtrace_helpers import fake_rdagent, tmp_trace  # noqa: F401 - pytest fixtures
