import dataclasses

import pytest

from gateway.config import GatewayConfig
from services.asr.config import AsrConfig
from services.common import limits
from services.common.config import ConfigError, ServerConfig, from_env, read_setting_file
from services.common.errors import InvalidArgument
from services.llm.config import LlmConfig
from services.tts.config import TtsConfig


def test_defaults_and_overrides():
    cfg = from_env(ServerConfig, "TALKER_", env={}, grpc_port=50052, metrics_port=9102)
    assert (cfg.grpc_port, cfg.metrics_port, cfg.threads) == (50052, 9102, 1)
    cfg = from_env(ServerConfig, "TALKER_", env={"TALKER_GRPC_PORT": "6000", "TALKER_THREADS": "2"},
                   grpc_port=50052)
    assert (cfg.grpc_port, cfg.threads) == (6000, 2)


def test_types_are_converted():
    env = {"TALKER_ASR_BEAM_SIZE": " 3 ", "TALKER_ASR_MAX_AUDIO_SECONDS": "12.5", "TALKER_ASR_LANGUAGE": "de"}
    cfg = from_env(AsrConfig, "TALKER_ASR_", env=env)
    assert (cfg.beam_size, cfg.max_audio_seconds, cfg.language) == (3, 12.5, "de")


@dataclasses.dataclass(frozen=True)
class _Flags:
    on: bool = False
    names: tuple[str, ...] = ()


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False)])
def test_booleans(raw, value):
    assert from_env(_Flags, "X_", env={"X_ON": raw}).on is value


def test_tuples():
    assert from_env(_Flags, "X_", env={"X_NAMES": "a, b,,c"}).names == ("a", "b", "c")


@pytest.mark.parametrize("env,needle", [
    ({"TALKER_GRPC_PORT": "abc"}, "TALKER_GRPC_PORT='abc': expected an integer"),
    ({"TALKER_GRPC_PORT": "70000"}, "TALKER_GRPC_PORT=70000: must be 0..65535"),
    ({"TALKER_THREADS": "0"}, "TALKER_THREADS=0"),
    ({"TALKER_GRACE_SECONDS": "soon"}, "expected a number"),
    ({"TALKER_LOG_LEVEL": "LOUD"}, "TALKER_LOG_LEVEL='LOUD'"),
])
def test_errors_name_the_variable(env, needle):
    with pytest.raises(ConfigError) as err:
        from_env(ServerConfig, "TALKER_", env=env)
    assert needle in str(err.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        from_env(ServerConfig, "TALKER_", env={"TALKER_GRPC_PORT": "x", "TALKER_METRICS_PORT": "y"})
    assert "TALKER_GRPC_PORT" in str(err.value) and "TALKER_METRICS_PORT" in str(err.value)


@pytest.mark.parametrize("cls,prefix,env,needle", [
    (AsrConfig, "TALKER_ASR_", {"TALKER_ASR_COMPUTE_TYPE": "int3"}, "not a CTranslate2 compute type"),
    (LlmConfig, "TALKER_LLM_", {"TALKER_LLM_BACKEND": "gpt"}, "supported: llamacpp"),
    (LlmConfig, "TALKER_LLM_", {"TALKER_LLM_MAX_TOKENS": "5000"}, "=5000: must be 1..TALKER_LLM_CONTEXT_LENGTH-1"),
    (TtsConfig, "TALKER_TTS_", {"TALKER_TTS_SPEAKING_RATE": "9"}, "must be 0.25..4"),
    (GatewayConfig, "TALKER_GATEWAY_", {"TALKER_GATEWAY_MAX_SESSIONS": "0"}, "TALKER_GATEWAY_MAX_SESSIONS=0"),
    (GatewayConfig, "TALKER_GATEWAY_", {"TALKER_GATEWAY_ASR_TARGET": ""}, "TALKER_GATEWAY_ASR_TARGET"),
])
def test_service_configs_validate(cls, prefix, env, needle):
    with pytest.raises(ConfigError) as err:
        from_env(cls, prefix, env=env)
    assert needle in str(err.value)


def test_a_setting_file_that_cannot_be_read_names_the_setting(tmp_path):
    (tmp_path / "ca.pem").write_bytes(b"pem")
    assert read_setting_file("TALKER_TLS_CLIENT_CA_FILE", str(tmp_path / "ca.pem")) == b"pem"
    with pytest.raises(ConfigError, match=r"TALKER_TLS_CERT_FILE=.*missing\.pem: cannot read it \(No such file"):
        read_setting_file("TALKER_TLS_CERT_FILE", str(tmp_path / "missing.pem"))


def test_a_config_built_in_code_names_its_variable_too():
    with pytest.raises(ConfigError, match=r"^TALKER_GATEWAY_MAX_SESSIONS=0: must be 1\.\.100000$"):
        GatewayConfig(max_sessions=0)
    with pytest.raises(ConfigError, match=r"^TALKER_ASR_MAX_AUDIO_SECONDS=0\.0: must be \(0, 600\]$"):
        AsrConfig(max_audio_seconds=0.0)


def test_a_setting_and_the_request_field_it_defaults_share_their_range():
    assert str(limits.TOP_P) == "(0, 1]" and 1.0 in limits.TOP_P and 0.0 not in limits.TOP_P
    with pytest.raises(ConfigError, match=r"TALKER_LLM_TEMPERATURE=3\.0: must be 0\.\.2"):
        LlmConfig(temperature=3.0)
    with pytest.raises(InvalidArgument, match=r"^temperature: 3 is outside 0\.\.2$"):
        limits.TEMPERATURE.check("temperature", 3.0)
