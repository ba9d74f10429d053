"""LLM benchmark: each backend at 1 and 4 concurrent sessions, side by side.

Starts the LLM service once per backend from its own environment (.venv/llm for llama.cpp,
.venv/llm-vllm for vLLM) on free ports, sends rounds of concurrent Generate calls with a fixed
number of tokens to generate, and reports aggregate tokens/s, per-session tokens/s and time to
first token (median, p95) as seen by the client. Writes a markdown section (machine, command,
table) to --out and prints it.

    .venv/dev/bin/python bench/llm.py [--backends llamacpp,vllm] [--sessions 1,4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.common import machine, pct, start_service, stop_service, write_section  # noqa: E402
from stack.process import ServiceProcess  # noqa: E402
from talker.v1 import llm_pb2, llm_pb2_grpc  # noqa: E402

VENVS = {"llamacpp": "llm", "vllm": "llm-vllm"}
QUESTIONS = [
    "Tell me about the moon.", "Why do cats purr?", "How do airplanes fly?", "What is a rainbow?",
    "Describe a busy market.", "Why is the sea salty?", "How do bees make honey?", "What is jazz?",
]


def start(backend: str, venv_dir: Path, threads: int, log: Path) -> tuple[ServiceProcess, str, float]:
    # Both backends on the same weights (vLLM's default is SmolLM2 converted from the `tiny` GGUF), so the
    # rows compare the engines; bench/answers.py compares the models.
    env = {"TALKER_LLM_BACKEND": backend, "TALKER_THREADS": str(threads)}
    if backend == "llamacpp":
        env["TALKER_LLM_MODEL"] = "tiny"
    return start_service(backend, venv_dir / VENVS[backend] / "bin" / "python", "services.llm", env, log)


def one(stub, question: str, max_tokens: int, seed: int) -> tuple[float, int, float]:
    """(ttft seconds, generated tokens, duration seconds) of one request."""
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    request = llm_pb2.GenerateRequest(
        messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=question)],
        max_tokens=max_tokens, temperature=0.7, seed=seed)
    for r in stub.Generate(request, timeout=300):
        if r.text and ttft is None:
            ttft = time.perf_counter() - t0
        if r.usage.completion_tokens:
            tokens = r.usage.completion_tokens
    return ttft or float("nan"), tokens, time.perf_counter() - t0


def measure(target: str, sessions: int, rounds: int, max_tokens: int) -> dict:
    with grpc.insecure_channel(target) as ch:
        stub = llm_pb2_grpc.LlmServiceStub(ch)
        one(stub, "Hi", 8, 0)  # warm-up
        ttfts, session_rates, total_tokens, wall = [], [], 0, 0.0
        with concurrent.futures.ThreadPoolExecutor(sessions) as pool:
            for r in range(rounds):
                t0 = time.perf_counter()
                futures = [pool.submit(one, stub, QUESTIONS[(r * sessions + i) % len(QUESTIONS)], max_tokens,
                                       r * sessions + i) for i in range(sessions)]
                results = [f.result() for f in futures]
                wall += time.perf_counter() - t0
                for ttft, tokens, duration in results:
                    ttfts.append(ttft)
                    total_tokens += tokens
                    session_rates.append(tokens / duration if duration else 0.0)
    return {"requests": len(ttfts), "tokens": total_tokens, "tok_s": total_tokens / wall,
            "session_tok_s": statistics.median(session_rates), "ttft_med": statistics.median(ttfts),
            "ttft_p95": pct(ttfts, 95)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="llamacpp,vllm")
    ap.add_argument("--sessions", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="TALKER_THREADS for the service")
    ap.add_argument("--venv-dir", default=os.environ.get("TALKER_VENV_DIR", str(ROOT / ".venv")))
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "llm.md"))
    args = ap.parse_args(argv)
    venv_dir = Path(args.venv_dir)
    sessions = [int(s) for s in args.sessions.split(",")]
    rows, notes = [], []
    logs = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    for backend in args.backends.split(","):
        if not (venv_dir / VENVS[backend] / ".installed").exists():
            notes.append(f"- {backend}: skipped, {venv_dir / VENVS[backend]} is not installed (make setup)")
            continue
        proc, target, load = start(backend, venv_dir, args.threads, logs / f"{backend}.log")
        try:
            for n in sessions:
                r = measure(target, n, args.rounds, args.max_tokens)
                rows.append((backend, n, r, load))
                print(f"{backend} x{n}: {r['tok_s']:.1f} tok/s, TTFT median {r['ttft_med'] * 1000:.0f} ms",
                      file=sys.stderr)
        finally:
            stop_service(proc)
    lines = [
        "## LLM: tokens/s and time to first token",
        "",
        f"- machine: {machine()}",
        f"- command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, 'bench/llm.py', *sys.argv[1:]])}`",
        f"- each round sends N concurrent Generate calls (one user question each, max_tokens {args.max_tokens}, "
        f"temperature 0.7); {args.rounds} rounds per row; TALKER_THREADS={args.threads}; TTFT and tokens/s as "
        "the client sees them over gRPC; aggregate tokens/s = all generated tokens / wall time of the rounds",
        *notes,
        "",
        "| backend | sessions | requests | tokens | aggregate tok/s | per-session tok/s | TTFT median | TTFT p95 "
        "| load s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, n, r, load in rows:
        lines.append(f"| {backend} | {n} | {r['requests']} | {r['tokens']} | {r['tok_s']:.1f} | "
                     f"{r['session_tok_s']:.1f} | {r['ttft_med'] * 1000:.0f} ms | {r['ttft_p95'] * 1000:.0f} ms | "
                     f"{load:.1f} |")
    text = "\n".join(lines) + "\n"
    write_section("llm", text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
