"""One real conversation turn end to end, through five real service processes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from gateway.cli import collect_turn, save_mp4
from services.common.audio import rms
from services.common.media import probe
from talker.v1 import common_pb2, gateway_pb2
from tests.wer import wer

SPOKEN_QUESTION = "What is the capital of France?"


def ask(gateway, **kw):
    result = collect_turn(gateway.Ask(gateway_pb2.AskRequest(**kw), timeout=240), show=False)
    assert result is not None, "the turn failed; see the service logs"
    return result


def check_av(result, tmp_path):
    s = result["summary"]
    audio = result["audio"]
    assert result["rate"] > 0 and audio.size > 0
    assert rms(audio) > 0.02, "the reply's audio is silent"
    seconds = audio.size / result["rate"]
    assert s.audio_seconds == pytest.approx(seconds, abs=1e-3)
    assert s.fps == 25
    assert abs(len(result["frames"]) - seconds * s.fps) <= 1, (len(result["frames"]), seconds)
    pts = np.array([f.pts for f in result["frames"]])
    assert np.allclose(np.diff(pts), 1 / s.fps, atol=1e-6), "frames are not evenly spaced at the fps"
    assert all(f.format == common_pb2.FRAME_FORMAT_JPEG and f.data[:2] == b"\xff\xd8" for f in result["frames"])
    out = tmp_path / "reply.mp4"
    save_mp4(result, out)
    info = probe(str(out))
    assert info["video_frames"] == len(result["frames"])
    assert abs(info["video_seconds"] - info["audio_seconds"]) <= 0.2, info
    assert abs(info["audio_seconds"] - seconds) <= 0.2, info


def test_text_turn(gateway, tmp_path):
    result = ask(gateway, text="Tell me something about the sea.")
    s = result["summary"]
    assert s.transcript == "Tell me something about the sea."
    assert len(s.reply.split()) >= 3, s.reply
    check_av(result, tmp_path)
    # Stages overlap: audio starts before the turn ends, frames shortly after the audio.
    assert 0 < s.time_to_first_token_seconds <= s.time_to_first_audio_seconds <= s.time_to_first_frame_seconds \
        < s.turn_seconds
    assert {st.stage for st in s.stages} == {"llm", "tts", "animator"}


def test_spoken_turn(gateway, stack, tmp_path):
    # The question is spoken by the TTS service itself, then asked as a WAV file.
    wav = stack.speak(SPOKEN_QUESTION)
    result = ask(gateway, wav=wav)
    s = result["summary"]
    assert wer(SPOKEN_QUESTION, s.transcript) <= 0.2, s.transcript
    assert s.reply.strip()
    assert {st.stage for st in s.stages} == {"asr", "llm", "tts", "animator"}
    assert 0 < s.time_to_transcript_seconds < s.time_to_first_token_seconds
    check_av(result, tmp_path)


def test_converse_keeps_history_across_turns(gateway):
    def requests():
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=48))
        yield gateway_pb2.ConverseRequest(text="My name is Alice.")

    events = list(gateway.Converse(requests(), timeout=240))
    summaries = [e.summary for e in events if e.WhichOneof("event") == "summary"]
    assert len(summaries) == 1 and summaries[0].reply
    assert all(e.turn == 1 for e in events)
    kinds = {e.WhichOneof("event") for e in events}
    assert {"transcript", "reply_text", "audio", "frame", "summary"} <= kinds


@pytest.mark.parametrize("request_,code,needle", [
    (gateway_pb2.AskRequest(text="   "), grpc.StatusCode.INVALID_ARGUMENT, "text: empty"),
    (gateway_pb2.AskRequest(), grpc.StatusCode.INVALID_ARGUMENT, "input: set either text or wav"),
    (gateway_pb2.AskRequest(wav=b"RIFF...."), grpc.StatusCode.INVALID_ARGUMENT, "wav: not a readable"),
    (gateway_pb2.AskRequest(text="hi", config=gateway_pb2.SessionConfig(fps=500)),
     grpc.StatusCode.INVALID_ARGUMENT, "config.fps: 500"),
])
def test_bad_requests_get_a_clear_status_and_the_next_turn_works(gateway, request_, code, needle):
    with pytest.raises(grpc.RpcError) as err:
        list(gateway.Ask(request_, timeout=30))
    assert err.value.code() == code
    assert needle in err.value.details()


def test_converse_must_start_with_config(gateway):
    with pytest.raises(grpc.RpcError) as err:
        list(gateway.Converse(iter([gateway_pb2.ConverseRequest(text="hello")]), timeout=30))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "first message must be a SessionConfig" in err.value.details()
    # and the gateway still serves
    result = ask(gateway, text="Say hello.", config=gateway_pb2.SessionConfig(max_reply_tokens=24))
    assert result["summary"].reply
