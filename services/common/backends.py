"""Backends chosen one way in every stage: a map from a name to ``module:Class``.

Each stage's config declares ``BACKENDS = {name: "module:Class"}`` and refuses a name not in it;
the service builds the named one with :func:`backend_class`. The module is imported only then, so
a backend's libraries (vLLM, torch) are needed only where it runs, and a stage's base module never
imports its own implementations.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping


def backend_class(backends: Mapping[str, str], name: str) -> type:
    """The class registered as ``name`` (``module:Class``), imported now."""
    module, _, attr = backends[name].partition(":")
    return getattr(importlib.import_module(module), attr)
