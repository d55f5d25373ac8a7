"""Test support: a synthetic RD-Agent trace generator and a symbolic pickle reader (no rdagent import)."""
