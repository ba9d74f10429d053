"""The runtime locks (`make test-locks`): each one is what `make lock` makes from its .in today (uv,
current pins preferred), every pin carries a hash (pip --require-hashes installs them), and no
development tool sits in a service's runtime lock."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = subprocess.run(["bash", "mk/lock.sh", "list"], cwd=ROOT, check=True, capture_output=True,
                       text=True).stdout.split()
DEV_TOOLS = {"ruff", "pytest", "pytest-timeout", "mypy", "black", "flake8", "pip-audit", "pip-tools", "uv"}

if "UV" not in os.environ:
    pytest.skip("UV is not set: run `make test-locks`", allow_module_level=True)


def pins(text: str) -> dict[str, list[str]]:
    """name -> its hashes, from a lock (continuation lines joined)."""
    out: dict[str, list[str]] = {}
    for entry in re.sub(r"\\\n\s*", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if entry:
            name = re.split(r"[=<>~! ;\[]", entry, maxsplit=1)[0].lower().replace("_", "-")
            out[name] = re.findall(r"--hash=sha256:[0-9a-f]{64}", entry)
    return out


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_matches_its_in(lock, tmp_path):
    assert (ROOT / lock).exists() and (ROOT / lock).with_suffix(".in").exists(), lock
    out = tmp_path / "lock.txt"
    subprocess.run(["bash", "mk/lock.sh", "compile", lock, str(out)], cwd=ROOT, check=True)
    assert out.read_text() == (ROOT / lock).read_text(), f"{lock} is stale: run `make lock`"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_hashed(lock):
    entries = pins((ROOT / lock).read_text())
    assert entries, lock
    text = re.sub(r"\\\n\s*", " ", (ROOT / lock).read_text())
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.match(r"^[A-Za-z0-9_.-]+==\S+ ", line), f"{lock}: not an exact pin: {line[:80]}"
    unhashed = [name for name, hashes in entries.items() if not hashes]
    assert not unhashed, f"{lock}: pins without a hash: {unhashed}"


@pytest.mark.parametrize("lock", [lock for lock in LOCKS if "build-requirements" not in lock])
def test_no_development_tool_in_a_runtime_lock(lock):
    assert not DEV_TOOLS & set(pins((ROOT / lock).read_text())), lock
