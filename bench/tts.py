"""TTS benchmark: time to first audio and real-time factor, each backend on the same sentences.

Starts the TTS service once per backend from its own environment (.venv/tts for Piper,
.venv/tts-coqui for Coqui TTS) on free ports, synthesizes the same five sentences (short to long)
--repeat times after a warm-up request, and reports, as the client sees them over gRPC, the time
to the first audio chunk and the real-time factor (synthesis wall time / audio seconds), median
over all requests and per sentence. Writes a markdown section (machine, command, tables) to --out.

Coqui needs a model: --coqui-model DIR (config.json + model.pth, or an XTTS directory); without it
a tiny randomly initialised VITS is built (tests/data/tts/make_tiny_coqui.py), which measures the
service's Coqui code path, not the cost of a real trained model.

    .venv/dev/bin/python bench/tts.py [--backends piper,coqui] [--repeat 3] [--coqui-model DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.common import machine, start_service, stop_service, write_section  # noqa: E402
from stack.process import ServiceProcess  # noqa: E402
from talker.v1 import tts_pb2, tts_pb2_grpc  # noqa: E402

VENVS = {"piper": "tts", "coqui": "tts-coqui"}
SENTENCES = [
    "Hello!",
    "The weather is lovely today, so we will walk to the park.",
    "Please send me the report before the meeting on Friday, and remember to include the numbers.",
    "She bought fresh bread, a bottle of milk and some apples at the market, then walked home slowly.",
    "When the morning fog finally lifted over the harbour, the fishermen, who had waited since dawn, "
    "pushed their boats into the water, and for the first time in weeks the whole village seemed to "
    "breathe again.",
]


def build_tiny_coqui(venv_dir: Path, out: Path) -> Path:
    subprocess.run([str(venv_dir / VENVS["coqui"] / "bin" / "python"), str(ROOT / "tests/data/tts/make_tiny_coqui.py"),
                    str(out)], check=True, capture_output=True, timeout=600)
    return out


def start(backend: str, venv_dir: Path, env_extra: dict[str, str], threads: int,
          log: Path) -> tuple[ServiceProcess, str, float]:
    return start_service(backend, venv_dir / VENVS[backend] / "bin" / "python", "services.tts",
                         {"TALKER_TTS_BACKEND": backend, "TALKER_THREADS": str(threads), **env_extra}, log)


def one(stub, text: str) -> tuple[float, float, float]:
    """(time to first audio, synthesis wall time, audio seconds) of one request."""
    t0 = time.perf_counter()
    first, samples, rate = None, 0, 1
    for r in stub.Synthesize(tts_pb2.SynthesizeRequest(text=text), timeout=300):
        if first is None:
            first = time.perf_counter() - t0
        samples += len(r.audio.pcm) // 2
        rate = r.audio.sample_rate
    return first or float("nan"), time.perf_counter() - t0, samples / rate


def measure(target: str, repeat: int) -> tuple[str, list[list[tuple[float, float, float]]]]:
    """The default voice's name and, per sentence, one (ttfa, seconds, audio seconds) per repeat."""
    with grpc.insecure_channel(target) as ch:
        stub = tts_pb2_grpc.TtsServiceStub(ch)
        voice = stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10).default_voice
        one(stub, "Warming up.")
        results: list[list[tuple[float, float, float]]] = [[] for _ in SENTENCES]
        for _ in range(repeat):
            for i, text in enumerate(SENTENCES):
                results[i].append(one(stub, text))
    return voice, results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="piper,coqui")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="TALKER_THREADS for the service (its default: 1)")
    ap.add_argument("--coqui-model", default="", help="a Coqui model directory (config.json + model.pth); "
                                                      "default: a tiny random VITS built for the run")
    ap.add_argument("--venv-dir", default=os.environ.get("TALKER_VENV_DIR", str(ROOT / ".venv")))
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "tts.md"))
    args = ap.parse_args(argv)
    venv_dir = Path(args.venv_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-tts-"))
    rows, per_sentence, notes = [], {}, []
    for backend in args.backends.split(","):
        if not (venv_dir / VENVS[backend] / ".installed").exists():
            notes.append(f"- {backend}: skipped, {venv_dir / VENVS[backend]} is not installed (make setup)")
            continue
        env: dict[str, str] = {}
        model_note = "embedded voice"
        if backend == "coqui":
            model = Path(args.coqui_model) if args.coqui_model else build_tiny_coqui(venv_dir, work / "tiny-vits")
            checkpoint = model if (model / "vocab.json").exists() else model / "model.pth"
            env.update(TALKER_TTS_MODEL_PATH=str(checkpoint), TALKER_TTS_CONFIG_PATH=str(model / "config.json"),
                       TALKER_TTS_DEVICE=os.environ.get("TALKER_TTS_DEVICE", "auto"))
            if (model / "voices").is_dir():  # XTTS: reference recordings to clone
                env["TALKER_TTS_VOICE_DIR"] = str(model / "voices")
            model_note = str(model) if args.coqui_model else \
                "tiny random VITS (hidden 32, 1 layer, 16 kHz): the code path, not a real model's cost"
        proc, target, load = start(backend, venv_dir, env, args.threads, work / f"{backend}.log")
        try:
            voice, results = measure(target, args.repeat)
        finally:
            stop_service(proc)
        flat = [r for sentence in results for r in sentence]
        ttfa = [r[0] for r in flat]
        rtf = [r[1] / r[2] for r in flat if r[2] > 0]
        rows.append((backend, voice, model_note, len(flat), statistics.median(ttfa), max(ttfa),
                     statistics.median(rtf), sum(r[2] for r in flat) / args.repeat, load))
        per_sentence[backend] = [(statistics.median([r[0] for r in s]), statistics.median([r[1] / r[2] for r in s]),
                                  statistics.median([r[2] for r in s])) for s in results]
        print(f"{backend}: TTFA median {ms(rows[-1][4])}, RTF median {rows[-1][6]:.3f}", file=sys.stderr)
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "bench/tts.py", *sys.argv[1:]])
    lines = [
        "## TTS: time to first audio and real-time factor",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- the same {len(SENTENCES)} sentences ({min(map(len, SENTENCES))}..{max(map(len, SENTENCES))} "
        f"characters) x {args.repeat} per backend after one warm-up request, one at a time, TALKER_THREADS="
        f"{args.threads}; time to first audio (TTFA) and real-time factor (RTF = synthesis wall time / audio "
        "seconds) as the client sees them over gRPC; long sentences are cut at clauses so their first audio "
        "leaves early",
        *notes,
        "",
        "| backend | voice | model | requests | TTFA median | TTFA max | RTF median | audio s per pass | load s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, voice, note, n, ttfa_med, ttfa_max, rtf_med, audio, load in rows:
        lines.append(f"| {backend} | {voice} | {note} | {n} | {ms(ttfa_med)} | {ms(ttfa_max)} | {rtf_med:.3f} | "
                     f"{audio:.1f} | {load:.1f} |")
    if per_sentence:
        backends = list(per_sentence)
        lines += ["", "Per sentence (medians):", "",
                  "| chars | " + " | ".join(f"{b} TTFA | {b} RTF | {b} audio s" for b in backends) + " |",
                  "|---:|" + "---:|---:|---:|" * len(backends)]
        for i, text in enumerate(SENTENCES):
            cells = [f"{ms(per_sentence[b][i][0])} | {per_sentence[b][i][1]:.3f} | {per_sentence[b][i][2]:.2f}"
                     for b in backends]
            lines.append(f"| {len(text)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    write_section("tts", text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
