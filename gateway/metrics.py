"""Gateway metrics: the turn as the user experiences it, and each stage as the gateway sees it."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common import buckets

STAGES = ("asr", "llm", "tts", "animator")
# Status codes that mean the service failed the user (availability SLIs and error alerts count these);
# RESOURCE_EXHAUSTED is overload, its own saturation signal. Every other code is the caller's.
SERVER_CODES = ("UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED")
SATURATION_CODES = ("RESOURCE_EXHAUSTED",)
# Failed turns name the stage that failed them, or the gateway itself (bad input, its own deadline).
TURN_ERROR_SOURCES = (*STAGES, "gateway")


class GatewayMetrics:
    def __init__(self):
        p = "talker_gateway"
        self.turns = Counter(f"{p}_turns_total", "Turns by outcome.", ["status"])
        self.turn_seconds = Histogram(f"{p}_turn_duration_seconds", "From the end of the user's turn to the "
                                      "last frame of the reply.", buckets=buckets.TURN)
        self.first_transcript = Histogram(f"{p}_time_to_transcript_seconds", "Turn start to transcript.",
                                          buckets=buckets.FIRST_OUTPUT)
        self.first_token = Histogram(f"{p}_time_to_first_token_seconds", "Turn start to the LLM's first token.",
                                     buckets=buckets.FIRST_OUTPUT)
        self.first_audio = Histogram(f"{p}_time_to_first_audio_seconds", "Turn start to the first audio chunk.",
                                     buckets=buckets.FIRST_OUTPUT)
        self.first_frame = Histogram(f"{p}_time_to_first_frame_seconds", "Turn start to the first video frame.",
                                     buckets=buckets.FIRST_OUTPUT)
        self.stage_seconds = Histogram(f"{p}_stage_duration_seconds", "Time inside one stage call.", ["stage"],
                                       buckets=buckets.STAGE)
        self.stage_errors = Counter(f"{p}_stage_errors_total", "Failed stage calls by status code.",
                                    ["stage", "code"])
        self.turn_errors = Counter(f"{p}_turn_errors_total", "Failed turns by the stage that failed them "
                                   "(gateway: the gateway itself) and status code.", ["stage", "code"])
        self.active_sessions = Gauge(f"{p}_active_sessions", "Open sessions (Converse streams and Ask calls).")
        self.max_sessions = Gauge(f"{p}_max_sessions", "The session limit of this replica.")
        self.rejected_sessions = Counter(f"{p}_rejected_sessions_total", "Sessions refused, by reason.", ["reason"])
        for status in ("ok", "error", "cancelled"):
            self.turns.labels(status)
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        # Zero from the start, so rules and panels read 0 rather than no data until the first failure.
        for code in (*SERVER_CODES, *SATURATION_CODES, "INVALID_ARGUMENT"):
            for stage in STAGES:
                self.stage_errors.labels(stage, code)
            for source in TURN_ERROR_SOURCES:
                self.turn_errors.labels(source, code)
