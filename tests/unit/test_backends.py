"""Every stage names its backends the same way: a map from name to module:Class, checked by its config."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from services.asr.config import BACKENDS as ASR
from services.asr.config import AsrConfig
from services.common.backends import backend_class
from services.common.config import ConfigError
from services.llm.config import BACKENDS as LLM
from services.llm.config import LlmConfig
from services.tts.config import BACKENDS as TTS
from services.tts.config import TtsConfig

MAPS = {"asr": (ASR, AsrConfig), "llm": (LLM, LlmConfig), "tts": (TTS, TtsConfig)}


@pytest.mark.parametrize("stage", MAPS)
def test_every_backend_names_a_class_that_exists(stage):
    backends, _ = MAPS[stage]
    for name, path in backends.items():
        module, _, cls = path.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None, (name, path)
        # Parsed, not imported: its libraries (vLLM, torch) may be absent here.
        tree = ast.parse(Path(spec.origin).read_text())
        assert cls in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}, (name, path)


@pytest.mark.parametrize("stage", MAPS)
def test_the_config_refuses_a_backend_not_in_the_map(stage):
    backends, config = MAPS[stage]
    with pytest.raises(ConfigError, match=rf"^{config.PREFIX}BACKEND='nope': supported: {', '.join(backends)}$"):
        config(backend="nope")


def test_backend_class_imports_the_named_class():
    assert backend_class({"x": "services.common.limits:Range"}, "x").__name__ == "Range"
