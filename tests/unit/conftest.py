"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def preparer():
    """The animator's avatar preparer with the service's defaults, face mesh loaded (animator
    environment only: imported here, not at the top, so other environments collect this file)."""
    from services.animator.avatar import AvatarPreparer

    p = AvatarPreparer(size=512, crop_scale=2.8, max_bytes=20 << 20, max_side=4096, min_face_px=64)
    p.load()
    yield p
    p.close()
