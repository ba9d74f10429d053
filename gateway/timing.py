"""The turn's clock: one table of milestones drives the summary, the metrics and the deadline verdict.

A turn passes four milestones in order, one per stage: the transcript (ASR), the
first token (LLM), the first audio (TTS), the first frame (animator). Each row of
``MILESTONES`` names the stage, the TurnSummary field, the gateway histogram and
its help text; nothing else spells that mapping out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from services.common import tracing
from services.common.registry import STAGES
from talker.v1 import gateway_pb2


@dataclasses.dataclass(frozen=True)
class Milestone:
    stage: str  # the stage whose first output reaches it
    name: str   # TurnSummary.time_to_<name>_seconds, metric talker_gateway_time_to_<name>_seconds
    help: str

    @property
    def summary_field(self) -> str:
        return f"time_to_{self.name}_seconds"


MILESTONES = (
    Milestone("asr", "transcript", "Turn start to transcript."),
    Milestone("llm", "first_token", "Turn start to the LLM's first token."),
    Milestone("tts", "first_audio", "Turn start to the first audio chunk."),
    Milestone("animator", "first_frame", "Turn start to the first video frame."),
)
# One milestone per stage of the registry, in pipeline order (tests/unit/test_gateway_turn.py checks it).
_BY_STAGE = {m.stage: m for m in MILESTONES}


@dataclasses.dataclass
class StageClock:
    first_output: float = 0.0    # turn start -> the stage's first output
    busy: float = 0.0            # time inside calls to the stage
    calls: int = 0
    first_input_at: float = 0.0  # monotonic time the stage got its first input
    first_call: float = 0.0      # first input -> first useful output

    def summary(self, stage: str) -> gateway_pb2.StageTiming:
        return gateway_pb2.StageTiming(stage=stage, first_output_seconds=self.first_output, busy_seconds=self.busy,
                                       calls=self.calls, first_call_seconds=self.first_call)


class TurnTiming:
    """Milestones and per-stage clocks of one turn, counted from ``t0``."""

    def __init__(self, metrics) -> None:  # a gateway.metrics.GatewayMetrics
        self.metrics = metrics
        self.t0 = time.monotonic()
        self.clocks = {stage: StageClock() for stage in STAGES}
        self.marks: dict[str, float] = {}  # milestone name -> seconds since t0

    def restart(self, at: float | None = None) -> None:
        """The turn starts again (a spoken turn starts when the user stops speaking: now, or at
        ``at``, monotonic, when the end of speech was found earlier, hands-free)."""
        self.t0 = time.monotonic() if at is None else at

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def input(self, stage: str, at: float | None = None) -> None:
        """The stage got its first input (at ``at``, monotonic, if given)."""
        clock = self.clocks[stage]
        if at is not None or not clock.first_input_at:
            clock.first_input_at = time.monotonic() if at is None else at

    def useful(self, stage: str) -> None:
        """The stage produced its first output the next stage can use."""
        clock = self.clocks[stage]
        if clock.first_input_at and not clock.first_call:
            clock.first_call = time.monotonic() - clock.first_input_at

    def reached(self, stage: str, useful: bool = False) -> None:
        """The stage's first output reached the client: its milestone is passed."""
        now = self.elapsed()
        clock = self.clocks[stage]
        if not clock.first_output:
            clock.first_output = now
        self.marks.setdefault(_BY_STAGE[stage].name, now)
        if useful:
            self.useful(stage)

    @contextlib.contextmanager
    def call(self, stage: str):
        """Counts one call to the stage and the time spent in it (clock and histogram)."""
        clock = self.clocks[stage]
        clock.calls += 1
        start = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - start
            clock.busy += spent
            self.metrics.stage_seconds.labels(stage).observe(spent, tracing.exemplar())

    def waiting_on(self) -> str:
        """The stage the turn is waiting on: the first whose milestone has not been passed."""
        return next((m.stage for m in MILESTONES if m.name not in self.marks), MILESTONES[-1].stage)

    def summary_fields(self) -> dict:
        """The TurnSummary fields this clock owns."""
        fields = {m.summary_field: self.marks.get(m.name, 0.0) for m in MILESTONES}
        fields["turn_seconds"] = self.elapsed()
        fields["stages"] = [clock.summary(stage) for stage, clock in self.clocks.items() if clock.calls]
        return fields

    def observe(self, exemplar: dict[str, str] | None) -> None:
        """A finished turn's duration and milestones into the gateway's histograms."""
        self.metrics.turn_seconds.observe(self.elapsed(), exemplar)
        for m in MILESTONES:
            if m.name in self.marks:
                self.metrics.milestones[m.name].observe(self.marks[m.name], exemplar)
