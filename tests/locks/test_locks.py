"""The runtime locks (`make test-locks`): each one is what `make lock` makes from its .in today (uv,
current pins preferred), every pin carries a hash (pip --require-hashes installs them), each hash set is
the one the package index publishes for that version, every lock installs on the images' platform
(binary wheels only, but for the source builds named here), and no development tool sits in a service's
runtime lock. All of it resolves from the index's metadata: no wheel is downloaded (the CUDA vLLM lock
pins several GB)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = subprocess.run(["bash", "mk/lock.sh", "list"], cwd=ROOT, check=True, capture_output=True,
                       text=True).stdout.split()
# The images' platform: docker/python-base.sh makes Debian bookworm (glibc 2.36) with CPython 3.11.
IMAGE_PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_36")
# The only pins built from source in an image (Dockerfile BUILD_PACKAGES); every other pin needs a wheel.
SOURCE_BUILDS = {"services/llm/requirements.txt": {"llama-cpp-python"},
                 "services/tts/requirements-coqui.txt": {"docopt"}}
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


def options(lock: str) -> list[str]:
    """The lock's own uv options (mk/lock.sh), e.g. the local wheel directory of torch 2.13.0+cpu."""
    return subprocess.run(["bash", "mk/lock.sh", "options", lock], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.split()


def uv(*args: str) -> str:
    done = subprocess.run([os.environ["UV"], *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "UV_SYSTEM_CERTS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


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


@pytest.mark.parametrize("lock", LOCKS)
def test_every_hash_set_is_the_index_s(lock, tmp_path):
    """uv keeps the hashes of an existing lock when it recompiles it, so the test above cannot see a
    wrong hash: the pins alone, compiled afresh, get their hashes from the index's metadata (a local
    wheel's from the file)."""
    entries = pins((ROOT / lock).read_text())
    (tmp_path / "pins.txt").write_text("".join(f"{line.split()[0]}\n" for line in
                                               re.sub(r"\\\n\s*", " ", (ROOT / lock).read_text()).splitlines()
                                               if line.strip() and not line.lstrip().startswith("#")))
    uv("pip", "compile", "--quiet", "--generate-hashes", *IMAGE_PLATFORM, *options(lock), str(tmp_path / "pins.txt"),
       "-o", str(tmp_path / "fresh.txt"))
    fresh = pins((tmp_path / "fresh.txt").read_text())
    wrong = [name for name in entries if sorted(entries[name]) != sorted(fresh.get(name, []))]
    assert not wrong, f"{lock}: hashes differ from the index's for {wrong}: run `make lock` after removing them"


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_installs_on_the_images_platform(lock, tmp_path):
    """What pip --no-deps --require-hashes does in the image build, resolved without downloading: a
    wheel for CPython 3.11 on glibc 2.36 x86-64 exists for every pin not built from source."""
    entries = pins((ROOT / lock).read_text())
    binary_only = [f for name in entries if name not in SOURCE_BUILDS.get(lock, ()) for f in ("--only-binary", name)]
    out = uv("pip", "install", "--dry-run", "--no-deps", "--require-hashes", *binary_only, *IMAGE_PLATFORM,
             *(o for o in options(lock) if o != "--no-deps"), "--target", str(tmp_path / "target"), "-r", lock)
    assert re.search(rf"^Would install {len(entries)} packages?$", out, re.M), f"{lock}: {out[-2000:]}"


@pytest.mark.parametrize("lock", [lock for lock in LOCKS if "build-requirements" not in lock])
def test_no_development_tool_in_a_runtime_lock(lock):
    assert not DEV_TOOLS & set(pins((ROOT / lock).read_text())), lock
