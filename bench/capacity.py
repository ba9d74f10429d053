"""Capacity from measurements: each stage's CPU-seconds per turn and per second of audio.

Starts the local stack, runs spoken turns one after another (the ASR hears the question, the TTS and
the animator make the answer), and reads each service process's CPU time before and after; then holds
a hands-free session open in silence with idle video on (the page's default), the cost of a connected
conversation between its turns. Writes
out/bench/capacity.md (a section of docs/benchmarks.md) and docs/capacity.md, which turns the figures
into replicas per stage for N concurrent conversations. GPU-seconds are measured where the stage runs
on a GPU (talker_device_memory_* present); this machine has none, so none are reported.
"""

from __future__ import annotations

import argparse
import datetime
import io
import math
import sys
import wave

import grpc

from bench.common import ROOT, commit, machine, table, write_section
from bench.pipeline import SPOKEN_QUESTIONS, cpu_by_service, one_turn, start
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.spoken import realtime_chunks, silence

STAGES = ("gateway", "asr", "llm", "tts", "animator")
# Planning assumptions (docs/capacity.md states them): a conversation's turn lasts the question plus the
# answer as measured plus a pause before the next question; a replica is kept at 70% of its CPU request
# (the HPA's target); a gateway at 80% of its session slots (the replicas-needed rule's figure).
PAUSE_SECONDS = 3.0
QUESTION = SPOKEN_QUESTIONS[0]
UTILISATION = 0.7
SESSION_UTILISATION = 0.8


def chart_values() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "helm" / "talker" / "values.yaml").read_text())


def chart_cpu_requests() -> dict[str, float]:
    values = chart_values()

    def cores(v) -> float:
        v = str(v)
        return float(v[:-1]) / 1000 if v.endswith("m") else float(v)

    default = values["defaults"]["resources"]["requests"]["cpu"]
    return {s: cores(values["services"][s].get("resources", {}).get("requests", {}).get("cpu", default))
            for s in STAGES}


def chart_max_sessions() -> int:
    return int(chart_values()["services"]["gateway"]["env"]["TALKER_GATEWAY_MAX_SESSIONS"])


def listen(stub, seconds: float) -> int:
    """A hands-free session with idle video, streaming silence in real time; the idle frames it got."""
    config = gateway_pb2.SessionConfig(turn_detection=gateway_pb2.TURN_DETECTION_SERVER, idle_video=True)

    def requests():
        yield gateway_pb2.ConverseRequest(config=config)
        for pcm in realtime_chunks(silence(seconds)):
            yield gateway_pb2.ConverseRequest(audio=pcm)

    return sum(ev.WhichOneof("event") == "idle_frame" for ev in stub.Converse(requests(), timeout=seconds + 60))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=10, help="spoken turns measured")
    ap.add_argument("--offset", type=int, default=800, help="port offset of the benchmark stack")
    ap.add_argument("--conversations", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--listen-seconds", type=float, default=30.0, help="silence streamed to the listening session")
    args = ap.parse_args()

    stack = start(args.offset, metrics=True)
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(stack.services["gateway"].target))
        wav = stack.speak(QUESTION)
        with wave.open(io.BytesIO(wav)) as w:
            heard = w.getnframes() / w.getframerate()
        one_turn(stub, text="Hello!")          # warm-up: models and caches
        before = cpu_by_service(stack)
        spoken = 0.0
        for i in range(args.turns):
            s = one_turn(stub, wav=wav)
            spoken += s.audio_seconds
            print(f"turn {i + 1}: {s.turn_seconds:.2f} s, {s.audio_seconds:.1f} s of answer", file=sys.stderr)
        after = cpu_by_service(stack)
        idle_frames = listen(stub, args.listen_seconds)
        idle = cpu_by_service(stack)
    finally:
        stack.stop()

    per_turn = {s: (after[s] - before[s]) / args.turns for s in STAGES}
    listening = {s: (idle[s] - after[s]) / args.listen_seconds for s in STAGES}   # cores per open session
    # Audio each stage works on: ASR the question heard, TTS and animator the answer spoken.
    audio = {"asr": heard * args.turns, "tts": spoken, "animator": spoken}
    requests = chart_cpu_requests()
    cycle = heard + spoken / args.turns + PAUSE_SECONDS   # seconds between one conversation's turns
    rows = [[s, per_turn[s], (after[s] - before[s]) / audio[s] if s in audio else "-", requests[s]]
            for s in STAGES]
    cmd = f"`.venv/dev/bin/python -m bench.capacity --turns {args.turns}` (`make bench` runs it with 10 turns)"
    measured = f"""## Capacity (CPU-seconds per turn and per second of audio)

{args.turns} spoken turns of a {heard:.1f} s question, answered in three sentences ({spoken / args.turns:.1f} s of
answer per turn), one at a time; CPU time of each service process (user + system) over the turns.
Per second of audio: the question heard for the ASR, the answer spoken for the TTS and the animator.

{table(["stage", "CPU-s per turn", "CPU-s per audio second", "chart CPU request (cores)"], rows)}

Between turns: one hands-free `Converse` session with idle video on (the page's default) streaming
{args.listen_seconds:g} s of silence in real time ({idle_frames} idle frames received): the voice activity detector
(ASR), the audio and the idle frames (gateway) and the listening face (animator) run all the time a
conversation is open. Cores per open session:

{table(["stage", "cores per listening session"], [[s, listening[s]] for s in STAGES])}
"""
    write_section("capacity", measured)

    sessions = chart_max_sessions()
    plan_rows = []
    for n in args.conversations:
        turns_per_s = n / cycle
        row = {s: max(1, math.ceil((turns_per_s * per_turn[s] + n * listening[s]) / (requests[s] * UTILISATION)))
               for s in STAGES}
        row["gateway"] = max(row["gateway"], math.ceil(n / (sessions * SESSION_UTILISATION)))
        plan_rows.append([n, *row.values()])
    # Open conversations one gateway replica carries by CPU, against its session slots.
    gateway_cpu_sessions = requests["gateway"] * UTILISATION / (per_turn["gateway"] / cycle + listening["gateway"])
    bound = ("its CPU request runs out first. Raise `services.gateway.resources.requests.cpu`, or lower "
             "`TALKER_GATEWAY_MAX_SESSIONS`, until the two match."
             if gateway_cpu_sessions < sessions * SESSION_UTILISATION else
             "its session slots fill first, and the sessions rule adds replicas before the CPU runs short.")
    doc = f"""# Capacity

How many replicas each stage needs for N concurrent conversations, from measured CPU cost. Generated by
{cmd} on {datetime.date.today().isoformat()}, commit {commit()}; machine: {machine()}.
CPU time is steadier than wall time when a machine is shared (a process is charged only for the time it
runs), but cache and frequency effects remain, so treat the figures as within ±20% and re-run `make bench`
on your own nodes before sizing a cluster.
No GPU here: GPU-seconds are not measured; on a GPU node the LLM's and TTS's CPU cost drops and the
GPU time becomes the limit.

{measured.split(chr(10), 2)[2].strip()}

## Replicas per stage

replicas = ceil(conversations × (CPU-s per turn / {cycle:.1f} s per turn + cores per listening session)
/ (CPU request × {UTILISATION:g}))

A conversation takes a turn every {cycle:.1f} s: the question ({heard:.1f} s), the answer as measured
({spoken / args.turns:.1f} s) and a {PAUSE_SECONDS:g} s pause, and is open (hands-free, idle video on) all
the time, turns included (counting the listening cost during turns too errs on the safe side);
a replica is kept at {UTILISATION:.0%} of its CPU
request (the chart's HPA target). CPU requests are the chart's defaults. The gateway also needs one replica per
{SESSION_UTILISATION:.0%} of its {sessions} session slots (`TALKER_GATEWAY_MAX_SESSIONS`), whichever is more.

{table(["conversations", *STAGES], plan_rows)}

By CPU a gateway replica carries {gateway_cpu_sessions:.1f} open conversations at {UTILISATION:.0%} of its
{requests["gateway"]:g}-core request, against {sessions * SESSION_UTILISATION:.1f} by its session slots:
{bound}

The LLM and TTS here are the embedded CPU models; the llama.cpp backend decodes one sequence at a
time, so its replicas also bound latency, not only CPU.

## The same, live

The PrometheusRule computes this from the running system (helm/talker/files/talker-rules.yml,
group `talker.capacity`): `talker:cpu_seconds_per_turn:rate5m` is the measured column above at the
current load, `talker:replicas_needed` is the replica count needed now (CPU at 70% of each
replica's request, `talker_cpu_request_cores`, and for the gateway 80% of its session slots), and
`talker:replicas_running` the replicas up. The dashboard's *Capacity* row shows needed against
running, so HPA or KEDA targets can be checked against it: running persistently below needed means the
autoscaler's target or its maximum is too low.
"""
    (ROOT / "docs" / "capacity.md").write_text(doc)
    print("wrote out/bench/capacity.md and docs/capacity.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
