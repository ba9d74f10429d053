"""Gateway metrics: the turn as the user experiences it, and each stage as the gateway sees it."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from gateway.timing import MILESTONES, STAGES
from services.common import buckets

# Status codes that mean the service failed the user (availability SLIs and error alerts count these);
# RESOURCE_EXHAUSTED is overload, its own saturation signal. Every other code is the caller's.
SERVER_CODES = ("UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED")
SATURATION_CODES = ("RESOURCE_EXHAUSTED",)
# Failed turns name the stage that failed them, or the gateway itself (bad input, its own deadline).
TURN_ERROR_SOURCES = (*STAGES, "gateway")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        p = "talker_gateway"
        r = {"registry": registry}
        self.turns = Counter(f"{p}_turns_total", "Turns by outcome.", ["status"], **r)
        self.turn_seconds = Histogram(f"{p}_turn_duration_seconds", "From the end of the user's turn to the "
                                      "last frame of the reply.", buckets=buckets.TURN, **r)
        # One histogram per milestone: talker_gateway_time_to_transcript_seconds and so on.
        self.milestones = {m.name: Histogram(f"{p}_time_to_{m.name}_seconds", m.help, buckets=buckets.FIRST_OUTPUT,
                                             **r) for m in MILESTONES}
        self.stage_seconds = Histogram(f"{p}_stage_duration_seconds", "Time inside one stage call.", ["stage"],
                                       buckets=buckets.STAGE, **r)
        self.stage_errors = Counter(f"{p}_stage_errors_total", "Failed stage calls by status code.",
                                    ["stage", "code"], **r)
        self.turn_errors = Counter(f"{p}_turn_errors_total", "Failed turns by the stage that failed them "
                                   "(gateway: the gateway itself) and status code.", ["stage", "code"], **r)
        self.active_sessions = Gauge(f"{p}_active_sessions", "Open sessions (Converse streams and Ask calls).", **r)
        self.max_sessions = Gauge(f"{p}_max_sessions", "The session limit of this replica.", **r)
        self.rejected_sessions = Counter(f"{p}_rejected_sessions_total", "Sessions refused, by reason.", ["reason"],
                                         **r)
        # Hands-free sessions.
        self.barge_ins = Counter(f"{p}_barge_ins_total", "Replies stopped because the user started speaking.", **r)
        self.preemptive = Counter(f"{p}_preemptive_generations_total",
                                  "LLM calls started at a pause on the transcript so far, by result: hit (the "
                                  "final transcript matched, the call was kept) or miss (discarded).", ["result"], **r)
        self.end_of_turn_delay = Histogram(f"{p}_end_of_turn_delay_seconds",
                                           "From the end of the user's speech to the end-of-turn decision.",
                                           buckets=buckets.ENDPOINTING, **r)
        # Idle video between turns (SessionConfig.idle_video).
        self.idle_streams = Gauge(f"{p}_idle_streams", "Sessions streaming idle frames now.", **r)
        self.idle_frames = Counter(f"{p}_idle_frames_total", "Idle frames, by outcome: sent to the client, or "
                                   "dropped because its events queue was full.", ["outcome"], **r)
        for outcome in ("sent", "dropped"):
            self.idle_frames.labels(outcome)
        for result in ("hit", "miss"):
            self.preemptive.labels(result)
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
