"""End-to-end benchmark of the streaming pipeline on the embedded models.

Starts the local stack, then measures, on the gateway's clock:
- spoken push-to-talk turns: a different question each turn (so no turn reuses another's prompt),
  each in a fresh Converse session, its audio streamed in real time as a microphone would send it,
  then `end_of_turn` RELEASE_SECONDS after the speech ended (a button let go): time to first audio /
  first frame from that release, full turn, per-stage latency on the critical path, and the
  gateway's own overhead (time to first frame minus the stages' own first-output latencies); per
  LLM profile given with --profiles (each in its own stack);
- 1, 2 and 4 concurrent sessions: turns per minute, p50/p95 turn time, failed turns;
- the cost of instrumentation: the same load (greedy decoding: the same replies every run) with
  metrics and tracing on and off, alternated to cancel drift, as a throughput ratio: turns per
  CPU-second of the five service processes (what a saturated deployment serves; the CPU time of
  identical work is steady on a shared machine) and, for reference, turns per wall-clock minute.

Writes out/bench/pipeline.md and docs/benchmark_latency.png.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from bench.common import OUT, ROOT, p50, pct, profile_env, table, write_section
from services.common.registry import STAGES
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.spoken import RATE, concat, microphone_chunks, silence, trimmed, wav_to_16k

# Spoken questions, one per turn (cycled): different questions, so the LLM's prompt cache cannot reuse
# one turn's reply for the next.
SPOKEN_QUESTIONS = ("Could you tell me something interesting about the ocean and the animals living in it?",
                    "What is the capital of France?", "Why do cats purr when they are happy?",
                    "How do airplanes stay up in the air?", "What should I cook for dinner tonight?",
                    "Who wrote the play Romeo and Juliet?", "How far away is the moon from the earth?",
                    "What is a good way to fall asleep faster?")
RELEASE_SECONDS = 0.3  # silence between the end of speech and end_of_turn (the user lets go of the button)
THREE_SENTENCES = gateway_pb2.SessionConfig(
    system_prompt="You are Talker, a friendly digital human. Answer in exactly three short sentences.",
    max_reply_tokens=96)
TEXT_QUESTIONS = ["What do you like about autumn?", "How do bees make honey?", "Why is the sky blue?",
                  "What is a good breakfast?", "How do trains work?", "Tell me about the moon."]


def one_turn(stub, **kw) -> gateway_pb2.TurnSummary:
    summary = None
    for ev in stub.Ask(gateway_pb2.AskRequest(config=THREE_SENTENCES, **kw), timeout=300):
        if ev.WhichOneof("event") == "summary":
            summary = ev.summary
    return summary


def spoken_turn(stub, samples: np.ndarray) -> gateway_pb2.TurnSummary:
    """One push-to-talk turn in a fresh session: the question streamed in real time, end_of_turn at
    the release, the stream held open until the turn's summary."""
    done = threading.Event()

    def requests():
        yield gateway_pb2.ConverseRequest(config=THREE_SENTENCES)
        for pcm in microphone_chunks(concat(samples, silence(RELEASE_SECONDS)), RATE):
            yield gateway_pb2.ConverseRequest(audio=pcm)
        yield gateway_pb2.ConverseRequest(end_of_turn=gateway_pb2.EndOfTurn())
        done.wait(300)

    try:
        for ev in stub.Converse(requests(), timeout=300):
            if ev.WhichOneof("event") == "summary":
                return ev.summary
    finally:
        done.set()
    raise RuntimeError("the turn ended without a summary")


def critical_path(s: gateway_pb2.TurnSummary) -> dict[str, float]:
    stages = {st.stage: st.first_call_seconds for st in s.stages}
    row = {k: stages.get(k, 0.0) for k in STAGES}
    row["gateway"] = s.time_to_first_frame_seconds - sum(row.values())
    return row


def load(stub, sessions: int, turns_each: int) -> tuple[float, list[gateway_pb2.TurnSummary], int]:
    """Run ``sessions`` clients in parallel; returns (wall seconds, the turns' summaries, failures)."""
    def client(i: int):
        summaries, failed = [], 0
        for k in range(turns_each):
            try:
                summaries.append(one_turn(stub, text=TEXT_QUESTIONS[(i + k) % len(TEXT_QUESTIONS)]))
            except grpc.RpcError as exc:
                print(f"  turn failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
                failed += 1
        return summaries, failed

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(client, range(sessions)))
    wall = time.monotonic() - t0
    return wall, [s for r in results for s in r[0]], sum(r[1] for r in results)


def cpu_by_service(stack: Stack) -> dict[str, float]:
    """User + system CPU seconds used so far by each of the stack's service processes."""
    out = {}
    for name, svc in stack.services.items():
        fields = Path(f"/proc/{svc.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))
    return out


def cpu_seconds(stack: Stack) -> float:
    """User + system CPU seconds used so far by the stack's service processes."""
    return sum(cpu_by_service(stack).values())


def start(offset: int, metrics: bool, greedy: bool = False, extra: dict[str, str] | None = None) -> Stack:
    # Instrumentation off = no gRPC metrics interceptors and no tracing SDK in any service.
    env = {} if metrics else {"TALKER_METRICS_ENABLED": "false", "OTEL_SDK_DISABLED": "true"}
    env.update(extra or {})
    if greedy:  # the same replies in every run, so the runs differ only in what is measured
        env["TALKER_LLM_TEMPERATURE"] = "0"
    stack = Stack(run_dir=OUT / f"stack-{offset}", port_offset=offset, env=env)
    stack.stop()
    stack.start()
    stack.wait_serving(300)
    return stack


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [*STAGES, "gateway"]
    labels = {"asr": "ASR (decode after end of speech)", "llm": "LLM (to first sentence)",
              "tts": "TTS (to first audio)", "animator": "animator (to first frame)", "gateway": "gateway overhead"}
    med = {p: p50([r[p] for r in rows]) for p in parts}
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
    left = 0.0
    for p, color in zip(parts, ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"], strict=True):
        ax.barh([0], [med[p]], left=left, color=color, label=f"{labels[p]}: {med[p] * 1000:.0f} ms")
        left += med[p]
    ax.set_yticks([])
    ax.set_xlabel("seconds from the end of the spoken question (median)")
    ax.set_title("Time to first frame, by stage on the critical path")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=12, help="spoken turns for the latency figures")
    parser.add_argument("--load-turns", type=int, default=4, help="turns per session in the load runs")
    parser.add_argument("--offset", type=int, default=700, help="port offset of the benchmark stack")
    parser.add_argument("--instrumentation-pairs", type=int, default=3, help="on/off runs for the instrumentation cost")
    parser.add_argument("--profiles", default="quality",
                        help="comma-separated LLM profiles for the spoken turns, each in its own stack; the first "
                             "(the default, quality) also runs the concurrency figures; PROFILE+ASR_MODEL also sets "
                             "the ASR model (fast+tiny.en)")
    parser.add_argument("--models-dir", default="", help="TALKER_LLM_MODELS_DIR where the profiles are installed")
    args = parser.parse_args()

    profiles = args.profiles.split(",")
    by_profile: dict[str, list[gateway_pb2.TurnSummary]] = {}
    concurrency = {}
    questions: list[np.ndarray] = []
    for profile in profiles:
        extra = profile_env(profile, args.models_dir)
        stack = start(args.offset, metrics=True, extra=extra)
        try:
            stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(stack.services["gateway"].target))
            questions = questions or [trimmed(wav_to_16k(stack.speak(q))) for q in SPOKEN_QUESTIONS]
            one_turn(stub, text="Hello!")  # warm-up
            spoken = by_profile[profile] = []
            for i in range(args.turns):
                s = spoken_turn(stub, questions[i % len(questions)])
                spoken.append(s)
                path = " ".join(f"{k} {v:.2f}" for k, v in critical_path(s).items())
                print(f"{profile} spoken turn {i + 1}: first frame {s.time_to_first_frame_seconds:.3f} s "
                      f"({path}), turn {s.turn_seconds:.3f} s", file=sys.stderr)
            if profile == profiles[0]:
                for n in (1, 2, 4):
                    concurrency[n] = load(stub, n, args.load_turns)
                    print(f"{n} sessions: {concurrency[n][0]:.1f} s, failures {concurrency[n][2]}", file=sys.stderr)
        finally:
            stack.stop()
    spoken = by_profile[profiles[0]]

    # Instrumentation: alternate on/off stacks under the same 2-session load.
    runs: dict[bool, list[tuple[int, float, float]]] = {True: [], False: []}   # (turns, wall s, CPU s)
    for metrics in (True, False) * args.instrumentation_pairs:
        s2 = start(args.offset + 50, metrics=metrics, greedy=True)
        try:
            stub2 = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(s2.services["gateway"].target))
            one_turn(stub2, text="Hello!")
            cpu0 = cpu_seconds(s2)
            wall, times, _ = load(stub2, 2, args.load_turns)
            runs[metrics].append((len(times), wall, cpu_seconds(s2) - cpu0))
            print(f"instrumentation {'on' if metrics else 'off'}: {len(times)} turns, {wall:.1f} s wall, "
                  f"{runs[metrics][-1][2]:.1f} CPU s", file=sys.stderr)
        finally:
            s2.stop()

    def rate(on_: bool, column: int) -> float:
        return sum(r[0] for r in runs[on_]) / sum(r[column] for r in runs[on_])

    on, off = rate(True, 1), rate(False, 1)                 # turns per wall second
    cpu_on, cpu_off = rate(True, 2), rate(False, 2)         # turns per CPU second
    cpu_ratio = cpu_on / cpu_off

    ttfa = [s.time_to_first_audio_seconds for s in spoken]
    ttff = [s.time_to_first_frame_seconds for s in spoken]
    full = [s.turn_seconds for s in spoken]
    # Streaming shows on replies of several sentences: a one-sentence reply ends soon after its first frame
    # whatever the pipeline does. The spoken questions mostly get one ("Paris is the capital of France."),
    # so the share is taken on the one-session text turns whose replies have two sentence ends or more.
    def sentence_ends(s: gateway_pb2.TurnSummary) -> int:
        return max(1, sum(1 for ch in s.reply if ch in ".!?"))
    long_replies = [s for s in concurrency[1][1] if sentence_ends(s) >= 2]
    share = [s.time_to_first_frame_seconds / s.turn_seconds for s in long_replies] or [float("nan")]
    paths = [critical_path(s) for s in spoken]
    sentences = [sentence_ends(s) for s in spoken]
    rows = [[name, p50(v), pct(v, 95)] for name, v in [
        ("time to transcript (ASR)", [s.time_to_transcript_seconds for s in spoken]),
        ("time to first token", [s.time_to_first_token_seconds for s in spoken]),
        ("time to first audio", ttfa), ("time to first frame", ttff), ("full turn", full),
    ]]
    stage_rows = [[k, p50([p[k] for p in paths]) * 1000, pct([p[k] for p in paths], 95) * 1000]
                  for k in (*STAGES, "gateway")]
    conc_rows = []
    for n, (wall, summaries, failed) in concurrency.items():
        times = [s.turn_seconds for s in summaries]
        conc_rows.append([n, len(times) + failed, f"{60 * len(times) / wall:.1f}", p50(times), pct(times, 95), failed])

    png = ROOT / "docs" / "benchmark_latency.png"
    plot(paths, png)
    overhead = p50([p["gateway"] for p in paths])
    profile_rows = []
    for profile, turns in by_profile.items():
        first = [t.time_to_first_frame_seconds for t in turns]
        stage = [critical_path(t) for t in turns]
        profile_rows.append([profile, p50(first), pct(first, 95),
                             *(p50([p[k] for p in stage]) for k in ("asr", "llm", "tts"))])
    seconds = [q.size / RATE for q in questions]
    text = f"""## Pipeline (spoken question → lip-synced answer)

{args.turns} spoken push-to-talk turns, one at a time, each a fresh `Converse` session asking the next of
{len(SPOKEN_QUESTIONS)} different questions (spoken by the TTS service, {min(seconds):.1f}-{max(seconds):.1f} s),
streamed in real time as a microphone sends them, with `end_of_turn` sent {RELEASE_SECONDS} s after the speech
(the user lets go of the button); answers asked in three sentences (the replies had {p50(sentences):.0f}
sentence ends at the median). Seconds on the gateway's clock from `end_of_turn`, LLM profile
`{profiles[0]}`:

{table(["measure", "p50", "p95"], rows)}

Critical path to the first frame, per stage (ms; each stage from its first input to its first useful output,
the gateway being the rest):

{table(["stage", "p50 ms", "p95 ms"], stage_rows)}

First frame per LLM profile (same questions, each profile in its own stack; stages at p50, seconds):

{table(["profile", "first frame p50", "first frame p95", "ASR", "LLM", "TTS"], profile_rows)}

![latency breakdown](benchmark_latency.png)

Concurrent sessions ({args.load_turns} text turns each, three-sentence answers asked):

{table(["sessions", "turns", "turns/min", "turn p50 s", "turn p95 s", "failed"], conc_rows)}

Instrumentation: two sessions × {args.load_turns} turns (greedy decoding, so every run says the same) on a fresh
stack with metrics and tracing on (gRPC metrics interceptors, stage metrics, OpenTelemetry spans with no
exporter), then off (no interceptors, `OTEL_SDK_DISABLED=true`), alternated {args.instrumentation_pairs} times.
Throughput in turns per CPU-second of the five services (what a saturated deployment serves):
{cpu_on:.4f} vs {cpu_off:.4f}, **ratio on/off = {cpu_ratio:.3f}**
({1 / cpu_on:.1f} vs {1 / cpu_off:.1f} CPU s per turn). Wall clock, for reference (it also moves with
whatever else the machine runs): {on * 60:.2f} vs {off * 60:.2f} turns/min, ratio {on / off:.3f}.

Streaming: on the one-session text turns whose replies had two sentence ends or more
({len(long_replies)} of {len(concurrency[1][1])}), the first frame came at {p50(share):.0%} of the full turn at p50
(the spoken questions' one-sentence replies end soon after their first frame whatever the pipeline does).

Targets: first frame ≤ 40% of the full turn on replies of several sentences
({'met' if p50(share) <= 0.4 else 'MISSED'}: {p50(share):.0%} at p50),
first frame p50 ≤ 0.7 s after a push-to-talk question ({'met' if p50(ttff) <= 0.7 else 'MISSED'}:
{p50(ttff):.2f} s with `{profiles[0]}`), gateway overhead ≤ 50 ms
p50 ({'met' if overhead <= 0.05 else 'MISSED'}: {overhead * 1000:.0f} ms), instrumentation ratio ≥ 0.98
({'met' if cpu_ratio >= 0.98 else 'MISSED'}: {cpu_ratio:.3f}), no failed turn at 4 sessions
({'met' if concurrency[4][2] == 0 else 'MISSED'}).
"""
    print(write_section("pipeline", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
