import pytest

from services.common.config import ConfigError, from_env
from services.tts.backend import make_backend
from services.tts.config import TtsConfig


def test_defaults_are_the_embedded_piper_voice():
    cfg = from_env(TtsConfig, "TALKER_TTS_", env={})
    assert (cfg.backend, cfg.voice, cfg.speaking_rate, cfg.piece_chars, cfg.first_piece_chars, cfg.arena_shrink) == \
        ("piper", "", 1.0, 120, 60, True)
    assert from_env(TtsConfig, "TALKER_TTS_", env={"TALKER_TTS_ARENA_SHRINK": "off"}).arena_shrink is False


def test_coqui_settings():
    cfg = from_env(TtsConfig, "TALKER_TTS_", env={
        "TALKER_TTS_BACKEND": "coqui", "TALKER_TTS_MODEL_PATH": "/m/model.pth",
        "TALKER_TTS_CONFIG_PATH": "/m/config.json", "TALKER_TTS_DEVICE": "cuda:1", "TALKER_TTS_SPEAKING_RATE": "1.2"})
    assert (cfg.backend, cfg.model_path, cfg.config_path, cfg.device, cfg.speaking_rate) == \
        ("coqui", "/m/model.pth", "/m/config.json", "cuda:1", 1.2)
    # the backend is chosen by config; its libraries load only in load()
    assert make_backend(cfg).name == "coqui"


@pytest.mark.parametrize("env,needle", [
    ({"TALKER_TTS_BACKEND": "espeak"}, "supported: piper, coqui"),
    ({"TALKER_TTS_BACKEND": "coqui"}, "TALKER_TTS_MODEL_PATH='': required"),
    ({"TALKER_TTS_DEVICE": "tpu"}, "TALKER_TTS_DEVICE='tpu'"),
    ({"TALKER_TTS_SPEAKING_RATE": "0.1"}, "must be 0.25..4"),
    ({"TALKER_TTS_PIECE_CHARS": "5"}, "TALKER_TTS_PIECE_CHARS=5"),
    ({"TALKER_TTS_FIRST_PIECE_CHARS": "500"}, "TALKER_TTS_FIRST_PIECE_CHARS=500"),
    ({"TALKER_TTS_MAX_CHARS": "0"}, "TALKER_TTS_MAX_CHARS=0"),
])
def test_bad_settings_name_the_variable(env, needle):
    with pytest.raises(ConfigError) as err:
        from_env(TtsConfig, "TALKER_TTS_", env=env)
    assert needle in str(err.value)
