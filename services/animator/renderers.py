"""The animator's renderers by name, chosen the way every stage chooses its backend
(services/common/backends.py), plus ``package.module:Class`` plug-ins (e.g. a neural lip-sync model)."""

from __future__ import annotations

from services.animator.config import RENDERERS
from services.animator.render import Renderer
from services.common.backends import backend_class


def make_renderer(name: str, max_opening: float) -> Renderer:
    """A renderer by name (``RENDERERS``), or a ``package.module:Class`` plug-in, constructed with
    ``max_opening`` as its only keyword argument."""
    if name in RENDERERS:
        return backend_class(RENDERERS, name)(max_opening=max_opening)
    if ":" in name:
        renderer = backend_class({name: name}, name)(max_opening=max_opening)
        if not isinstance(renderer, Renderer):
            raise TypeError(f"{name} is not a services.animator.render.Renderer")
        return renderer
    raise ValueError(f"unknown renderer {name!r}")
