"""Test tiers, one marker per directory, so `-m` selects a tier the same way everywhere.

- ``unit``: in-process, fakes at most, seconds; runs in .venv/dev (``make test-unit``);
- ``animator``: the animator's unit tests, in .venv/animator (MediaPipe);
- ``observability``: alert rules through promtool;
- ``system``: the services as real processes on their real models;
- ``k8s``: the Helm chart, rendered offline (.venv/k8s);
- ``images``: the built container images, started with buildah (``make test-images``);
- ``locks``: the hashed locks against their .in files (``make test-locks``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "observability", "system", "k8s", "images", "locks")

# The animator's unit tests import MediaPipe: elsewhere they are not collected.
if importlib.util.find_spec("mediapipe") is None:
    collect_ignore_glob = ["unit/test_animator_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    for tier in (*TIERS, "animator"):
        config.addinivalue_line("markers", f"{tier}: the {tier} tier (tests/conftest.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier in TIERS:
            item.add_marker(tier)
        if item.path.name.startswith("test_animator_"):
            item.add_marker("animator")
