"""Qlib workflow configs of an experiment workspace (`conf*.yaml`): which one ran, rendered and parsed safely.

RD-Agent's conf files are Jinja templates (`{{ lr }}`, `{% if num_timesteps %}`) that RD-Agent renders with the
model's training hyperparameters before Qlib reads them. We render them the same way in Jinja's sandbox (unknown
names render as YAML null) and parse with `yaml.safe_load`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from rdbridge.materialize.errors import LoopInputError

FACTOR_CONFS = ("conf_combined_factors.yaml", "conf_baseline.yaml")
MODEL_CONFS = ("conf_sota_factors_model.yaml", "conf_baseline_factors_model.yaml",
               "conf_combined_factors_sota_model.yaml")


def pick_conf(ws_dir: Path, action: str) -> Path | None:
    """The config RD-Agent ran: combined factors when the workspace has them, else the baseline (per loop kind)."""
    has_combined = (ws_dir / "combined_factors_df.parquet").is_file()
    order = MODEL_CONFS if action == "model" else FACTOR_CONFS
    if action == "model" and not has_combined:
        order = ("conf_baseline_factors_model.yaml", *order)
    if action != "model" and not has_combined:
        order = ("conf_baseline.yaml", *order)
    for name in order:
        if (ws_dir / name).is_file():
            return ws_dir / name
    found = sorted(ws_dir.glob("conf*.yaml"))
    return found[0] if found else None


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    """One sandbox per process; unknown names render as YAML null."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    class Null(jinja2.Undefined):
        def __str__(self) -> str:
            return "null"

    return SandboxedEnvironment(undefined=Null, autoescape=False)


@functools.lru_cache(maxsize=64)
def _template(text: str) -> Any:
    """A compiled template per distinct config text: loops of one run share their few config files."""
    return _environment().from_string(text)


def _yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser, same safe constructor: ~7x faster


def load_conf(path: Path, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render (sandboxed Jinja) and parse one conf*.yaml; LoopInputError naming the file when it is not a mapping."""
    import jinja2
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LoopInputError(path, f"cannot read config ({type(e).__name__}: {e})") from None
    try:
        rendered = _template(text).render(**(variables or {}))
    except jinja2.TemplateError as e:
        raise LoopInputError(path, f"not a valid config template ({type(e).__name__}: {e})") from None
    try:
        doc = yaml.load(rendered, Loader=_yaml_loader())  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as e:
        raise LoopInputError(path, f"not valid YAML ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(doc, dict):
        raise LoopInputError(path, f"expected a YAML mapping, found {type(doc).__name__}")
    return doc


def dig(doc: Any, *keys: str) -> Any:
    """doc[k1][k2]... or None when any level is missing or not a mapping."""
    for k in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(k)
    return doc
