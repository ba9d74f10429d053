"""One turn is one trace, from the gateway through every stage, exported over OTLP."""

from __future__ import annotations

import secrets
import time

from services.common import registry
from talker.v1 import gateway_pb2

# A turn asked of the gateway passes every service that serves gRPC.
SERVICES = {f"talker-{name}" for name, s in registry.SERVICES.items() if s.grpc_port}


def test_a_spoken_turn_is_one_trace_across_all_five_services(gateway, stack, otlp):
    wav = stack.speak("How are you today?")

    trace_id = secrets.token_hex(16)
    metadata = [("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")]
    list(gateway.Ask(gateway_pb2.AskRequest(wav=wav, config=gateway_pb2.SessionConfig(max_reply_tokens=24)),
                     metadata=metadata, timeout=120))

    # Each service exports in its own batches: wait for all of them, and for the turn span itself.
    def complete(spans) -> bool:
        names = {s["name"] for s in spans}
        return {s["service"] for s in spans} >= SERVICES and {"talker.turn", "asr.transcribe", "tts.synthesize",
                                                             "animator.render"} <= names

    deadline = time.monotonic() + 15
    while not complete(otlp.trace(trace_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    spans = otlp.trace(trace_id)
    assert {s["service"] for s in spans} >= SERVICES, {s["service"] for s in spans}

    by_id = {s["span_id"]: s for s in spans}
    turn = next(s for s in spans if s["name"] == "talker.turn")
    assert turn["attributes"]["talker.turn.input"] == "audio"

    def under_turn(span) -> bool:
        while span["parent_id"] in by_id:
            span = by_id[span["parent_id"]]
            if span is turn:
                return True
        return False

    for service in SERVICES - {"talker-gateway"}:
        server_spans = [s for s in spans if s["service"] == service and s["name"].startswith("/talker.v1.")]
        assert server_spans and all(under_turn(s) for s in server_spans), service
    # Spans for the model work inside the stages, the LLM's with GenAI semantic-convention attributes.
    for name in ("asr.transcribe", "tts.synthesize", "animator.render"):
        work = [s for s in spans if s["name"] == name]
        assert work and all(under_turn(s) for s in work), name
    chat = next(s for s in spans if s["name"].startswith("chat "))
    assert under_turn(chat)
    attrs = chat["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"]
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] in (["stop"], ["length"])


def converse(gateway, metadata=()):
    def requests():
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=12))
        yield gateway_pb2.ConverseRequest(text="Hi!")

    events = list(gateway.Converse(requests(), metadata=metadata, timeout=120))
    assert events[-1].WhichOneof("event") == "summary"


def wait_for_spans(otlp, match) -> list[dict]:
    deadline = time.monotonic() + 15
    while not (found := [s for s in otlp.spans if match(s)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_converse_turns_get_their_own_traces_linked_to_the_session(gateway, otlp):
    seen = {s["span_id"] for s in otlp.spans}
    converse(gateway)
    turns = wait_for_spans(otlp, lambda s: s["name"] == "talker.turn" and s["span_id"] not in seen)
    assert len(turns) == 1 and turns[0]["parent_id"] == "", turns
    sessions = [s for s in otlp.spans if s["name"] == "/talker.v1.GatewayService/Converse"
                and s["service"] == "talker-gateway" and s["span_id"] not in seen]
    assert turns[0]["links"] == [sessions[0]["trace_id"]] != [turns[0]["trace_id"]]


def test_converse_turns_continue_the_callers_trace(gateway, otlp):
    """A caller that sends its trace context (the web service, for a browser session) gets the session's
    turns as children of its span, still linked to the session's server span."""
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    converse(gateway, [("traceparent", f"00-{trace_id}-{caller}-01")])
    turns = wait_for_spans(otlp, lambda s: s["name"] == "talker.turn" and s["trace_id"] == trace_id)
    assert len(turns) == 1 and turns[0]["parent_id"] == caller and turns[0]["links"] == [trace_id]
