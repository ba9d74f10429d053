"""End-to-end benchmark of the streaming pipeline on the embedded models.

Starts the local stack, then measures, on the gateway's clock:
- spoken turns (a ~3 s question): time to first audio / first frame, full turn, per-stage latency
  on the critical path, and the gateway's own overhead (time to first frame minus the stages' own
  first-output latencies);
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
import time
from pathlib import Path

import grpc

from bench.common import OUT, ROOT, p50, pct, table, write_section
from services.common.registry import STAGES
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc

QUESTION = "Could you tell me something interesting about the ocean and the animals living in it?"
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


def critical_path(s: gateway_pb2.TurnSummary) -> dict[str, float]:
    stages = {st.stage: st.first_call_seconds for st in s.stages}
    row = {k: stages.get(k, 0.0) for k in STAGES}
    row["gateway"] = s.time_to_first_frame_seconds - sum(row.values())
    return row


def load(stub, sessions: int, turns_each: int) -> tuple[float, list[float], int]:
    """Run ``sessions`` clients in parallel; returns (wall seconds, turn seconds, failures)."""
    def client(i: int):
        times, failed = [], 0
        for k in range(turns_each):
            try:
                s = one_turn(stub, text=TEXT_QUESTIONS[(i + k) % len(TEXT_QUESTIONS)])
                times.append(s.turn_seconds)
            except grpc.RpcError as exc:
                print(f"  turn failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
                failed += 1
        return times, failed

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(client, range(sessions)))
    wall = time.monotonic() - t0
    return wall, [t for r in results for t in r[0]], sum(r[1] for r in results)


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


def start(offset: int, metrics: bool, greedy: bool = False) -> Stack:
    # Instrumentation off = no gRPC metrics interceptors and no tracing SDK in any service.
    env = {} if metrics else {"TALKER_METRICS_ENABLED": "false", "OTEL_SDK_DISABLED": "true"}
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
    args = parser.parse_args()

    stack = start(args.offset, metrics=True)
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(stack.services["gateway"].target))
        wav = stack.speak(QUESTION)
        one_turn(stub, text="Hello!")  # warm-up
        spoken = []
        for i in range(args.turns):
            s = one_turn(stub, wav=wav)
            spoken.append(s)
            print(f"spoken turn {i + 1}: first frame {s.time_to_first_frame_seconds:.3f} s, "
                  f"turn {s.turn_seconds:.3f} s", file=sys.stderr)
        concurrency = {}
        for n in (1, 2, 4):
            concurrency[n] = load(stub, n, args.load_turns)
            print(f"{n} sessions: {concurrency[n][0]:.1f} s, failures {concurrency[n][2]}", file=sys.stderr)
    finally:
        stack.stop()

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
    share = [s.time_to_first_frame_seconds / s.turn_seconds for s in spoken]
    paths = [critical_path(s) for s in spoken]
    sentences = [max(1, sum(1 for ch in s.reply if ch in ".!?")) for s in spoken]
    rows = [[name, p50(v), pct(v, 95)] for name, v in [
        ("time to transcript (ASR)", [s.time_to_transcript_seconds for s in spoken]),
        ("time to first token", [s.time_to_first_token_seconds for s in spoken]),
        ("time to first audio", ttfa), ("time to first frame", ttff), ("full turn", full),
        ("first frame / full turn", share),
    ]]
    stage_rows = [[k, p50([p[k] for p in paths]) * 1000, pct([p[k] for p in paths], 95) * 1000]
                  for k in (*STAGES, "gateway")]
    conc_rows = []
    for n, (wall, times, failed) in concurrency.items():
        conc_rows.append([n, len(times) + failed, f"{60 * len(times) / wall:.1f}", p50(times), pct(times, 95), failed])

    png = ROOT / "docs" / "benchmark_latency.png"
    plot(paths, png)
    overhead = p50([p["gateway"] for p in paths])
    text = f"""## Pipeline (spoken question → lip-synced answer)

{args.turns} spoken turns of a {QUESTION!r} WAV ({len(wav) / 2 / 22050:.1f} s, made by the TTS service), one at
a time, answers asked in three sentences (the replies had {p50(sentences):.0f} sentence ends at the median).
Seconds on the gateway's clock from the end of the question:

{table(["measure", "p50", "p95"], rows)}

Critical path to the first frame, per stage (ms; each stage from its first input to its first useful output,
the gateway being the rest):

{table(["stage", "p50 ms", "p95 ms"], stage_rows)}

![latency breakdown](benchmark_latency.png)

Concurrent sessions ({args.load_turns} text turns each, three-sentence answers):

{table(["sessions", "turns", "turns/min", "turn p50 s", "turn p95 s", "failed"], conc_rows)}

Instrumentation: two sessions × {args.load_turns} turns (greedy decoding, so every run says the same) on a fresh
stack with metrics and tracing on (gRPC metrics interceptors, stage metrics, OpenTelemetry spans with no
exporter), then off (no interceptors, `OTEL_SDK_DISABLED=true`), alternated {args.instrumentation_pairs} times.
Throughput in turns per CPU-second of the five services (what a saturated deployment serves):
{cpu_on:.4f} vs {cpu_off:.4f}, **ratio on/off = {cpu_ratio:.3f}**
({1 / cpu_on:.1f} vs {1 / cpu_off:.1f} CPU s per turn). Wall clock, for reference (it also moves with
whatever else the machine runs): {on * 60:.2f} vs {off * 60:.2f} turns/min, ratio {on / off:.3f}.

Targets: first frame ≤ 40% of the full turn ({'met' if p50(share) <= 0.4 else 'MISSED'}: {p50(share):.0%} at p50),
first frame p50 ≤ 1.5 s ({'met' if p50(ttff) <= 1.5 else 'MISSED'}: {p50(ttff):.2f} s), gateway overhead ≤ 50 ms
p50 ({'met' if overhead <= 0.05 else 'MISSED'}: {overhead * 1000:.0f} ms), instrumentation ratio ≥ 0.98
({'met' if cpu_ratio >= 0.98 else 'MISSED'}: {cpu_ratio:.3f}), no failed turn at 4 sessions
({'met' if concurrency[4][2] == 0 else 'MISSED'}).
"""
    print(write_section("pipeline", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
