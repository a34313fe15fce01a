"""Built-in pipelines: ``syslog``, ``mail``, ``apache`` and ``sshd``, one TOML file each.

``load(path)`` gives the built-ins with a user's pipeline config on top (type by type), which is
what ``--config`` means everywhere.
"""

from __future__ import annotations

import functools
from pathlib import Path

from common.config import PipelineConfig, load_pipeline

HERE = Path(__file__).resolve().parent
BUILTIN_TYPES = ("syslog", "mail", "apache", "sshd")


@functools.lru_cache(maxsize=1)
def builtin_pipeline() -> PipelineConfig:
    """All four built-in types (parsed once per process)."""
    config = PipelineConfig()
    for name in BUILTIN_TYPES:
        config = config.merged(load_pipeline(HERE / f"{name}.toml"))
    config.default_type = "syslog"
    return config


def load(path: str | None) -> PipelineConfig:
    """The built-in pipeline, overridden type by type by the config file at ``path`` if given."""
    base = builtin_pipeline()
    if not path:
        return PipelineConfig(types=dict(base.types), default_type=base.default_type)
    return base.merged(load_pipeline(path))
