"""Answer-quality benchmark: what each candidate model says, scored, with the latencies the voice needs.

For each model (a name or profile of services/llm/models.py, or a .gguf path) the real LLM service is
started on free ports with that model and the shipped decoding settings (persona, repetition penalty,
sentence budget), and every conversation of bench/answer_set.py is sent greedily (temperature 0).
Per model it reports accuracy (the reply passes its item's checks), spoken-form violations (more
sentences than asked, a repeated phrase, markdown/lists/code/emoji, a reply cut mid-sentence), time to
first token, time to the first speakable piece (what the gateway hands TTS first), tokens/s, peak
memory of the service process, and the prompt-prefix cache (time to first token at turn 1 and turn 10
of one conversation, and at turn 10 of a second conversation interleaved with it turn by turn).

    .venv/dev/bin/python -m bench.answers [--models quality fast tiny] [--quick] [--out out/bench/answers.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.answer_set import ITEMS, Item
from bench.common import ROOT, machine, p50, pct, start_service, stop_service, write_section
from services.common.segments import SentenceSplitter, sentences
from services.llm.speech import repeated_phrase
from talker.v1 import llm_pb2, llm_pb2_grpc

_MARKUP = re.compile(r"[*#`|~]|\[[^\]]*\]\(|^\s*([-•+]|\d+[.)])\s", re.MULTILINE)
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")
_ROLES = (llm_pb2.ROLE_USER, llm_pb2.ROLE_ASSISTANT)


@dataclasses.dataclass
class Reply:
    text: str
    finish: int
    tokens: int
    ttft: float
    first_piece: float
    duration: float


def spoken_form(text: str, max_sentences: int = 3, finish: int = llm_pb2.FINISH_REASON_STOP) -> list[str]:
    """What makes ``text`` bad to speak; empty when it is fine."""
    problems = []
    if not text.strip():
        return ["empty"]
    n = len(sentences(text))
    if n > max_sentences:
        problems.append(f"{n} sentences (at most {max_sentences})")
    if phrase := repeated_phrase(text):
        problems.append(f"repeats '{phrase}'")
    if m := _MARKUP.search(text):
        problems.append(f"markup {m.group(0).strip()!r}")
    if m := _EMOJI.search(text):
        problems.append(f"emoji {m.group(0)!r}")
    if finish == llm_pb2.FINISH_REASON_LENGTH and not re.search(r"[.!?\u2026][\"')\]]*\s*$", text):
        problems.append("cut mid-sentence (max_tokens)")
    return problems


def correct(item: Item, text: str) -> bool:
    return any(re.search(a, text, re.IGNORECASE) for a in item.accept) and \
        not any(re.search(r, text, re.IGNORECASE) for r in item.reject)


def messages(turns: tuple[str, ...] | list[str]) -> list[llm_pb2.ChatMessage]:
    return [llm_pb2.ChatMessage(role=_ROLES[i % 2], content=t) for i, t in enumerate(turns)]


def ask(stub, turns, max_tokens: int = 0, timeout: float = 300) -> Reply:
    """One greedy Generate; times as the client sees them (first piece: the gateway's splitter)."""
    t0 = time.perf_counter()
    text, ttft, first_piece, finish, tokens = "", None, None, llm_pb2.FINISH_REASON_UNSPECIFIED, 0
    splitter = SentenceSplitter()
    request = llm_pb2.GenerateRequest(messages=messages(turns), max_tokens=max_tokens, temperature=0.0, seed=0)
    for r in stub.Generate(request, timeout=timeout):
        if r.text:
            ttft = ttft or time.perf_counter() - t0
            text += r.text
            if first_piece is None and splitter.feed(r.text):
                first_piece = time.perf_counter() - t0
        if r.finish_reason:
            finish, tokens = r.finish_reason, r.usage.completion_tokens
    duration = time.perf_counter() - t0
    return Reply(text, finish, tokens, ttft or float("nan"), first_piece or duration, duration)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prefix_cache(stub) -> tuple[float, float, float]:
    """TTFT at turn 1 and turn 10 of conversation A, and at turn 10 of conversation B, asked turn by
    turn between A's (each takes the live llama.cpp context from the other: the per-prefix state cache
    is what keeps both fast)."""
    conversations: tuple[list[str], list[str]] = ([], [])
    ttfts: tuple[list[float], list[float]] = ([], [])
    for i in range(10):
        for c, (turns, seen) in enumerate(zip(conversations, ttfts, strict=True)):
            turns.append(ITEMS[i + 10 * c].turns[-1])
            reply = ask(stub, turns, max_tokens=24)
            seen.append(reply.ttft)
            turns.append(reply.text.strip() or "Okay.")
    return ttfts[0][0], ttfts[0][-1], ttfts[1][-1]


def run_model(model: str, items: tuple[Item, ...], args, logs: Path) -> dict:
    env = {"TALKER_LLM_MODEL": model, "TALKER_THREADS": str(args.threads)}
    if args.models_dir:
        env["TALKER_LLM_MODELS_DIR"] = args.models_dir
    python = Path(args.venv_dir) / "llm" / "bin" / "python"
    proc, target, load = start_service(f"llm {model}", python, "services.llm", env, logs / f"{Path(model).stem}.log")
    try:
        with grpc.insecure_channel(target) as ch:
            stub = llm_pb2_grpc.LlmServiceStub(ch)
            rows = []
            for item in items:
                reply = ask(stub, item.turns)
                rows.append((item, reply, correct(item, reply.text),
                             spoken_form(reply.text, item.sentences, reply.finish)))
            cache = prefix_cache(stub) if not args.quick else None
        memory = peak_rss_mib(proc.pid())
    finally:
        stop_service(proc)
    replies = [r for _, r, _, _ in rows]
    rates = [r.tokens / (r.duration - r.ttft) for r in replies if r.tokens > 1 and r.duration > r.ttft]
    return {
        "model": model, "rows": rows, "load": load, "memory": memory, "cache": cache,
        "accuracy": sum(ok for _, _, ok, _ in rows) / len(rows),
        "violations": sum(bool(v) for _, _, _, v in rows),
        "ttft": p50([r.ttft for r in replies]), "ttft_p95": pct([r.ttft for r in replies], 95),
        "first_piece": p50([r.first_piece for r in replies]),
        "first_piece_p95": pct([r.first_piece for r in replies], 95),
        "tok_s": statistics.median(rates) if rates else float("nan"),
        "sentences": statistics.mean(len(sentences(r.text)) for r in replies),
    }


def report(results: list[dict], items: tuple[Item, ...], args) -> str:
    kinds = sorted({i.kind for i in items})
    lines = [
        "## LLM: answer quality",
        "",
        f"- machine: {machine()}",
        f"- command: `python -m bench.answers {' '.join(sys.argv[1:])}`",
        f"- {len(items)} conversations of bench/answer_set.py ({', '.join(kinds)}), greedy, the service's "
        f"persona, repetition penalty and sentence budget; TALKER_THREADS={args.threads}; times as the client "
        "sees them over gRPC; first piece = the first text the gateway's splitter hands TTS",
        "",
        "| model | accuracy | spoken-form violations | TTFT p50 / p95 | first piece p50 / p95 | tok/s | "
        "sentences (mean) | peak RSS | load s | TTFT turn 1 / turn 10 / turn 10 of the interleaved one |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cache = "/".join(f"{t * 1000:.0f}" for t in r["cache"]) + " ms" if r["cache"] else "-"
        lines.append(
            f"| {r['model']} | {r['accuracy']:.0%} | {r['violations']} | {r['ttft'] * 1000:.0f} / "
            f"{r['ttft_p95'] * 1000:.0f} ms | {r['first_piece'] * 1000:.0f} / {r['first_piece_p95'] * 1000:.0f} ms "
            f"| {r['tok_s']:.1f} | {r['sentences']:.1f} | {r['memory']:.0f} MiB | {r['load']:.1f} | {cache} |")
    lines += ["", "Accuracy by kind:", "", "| model | " + " | ".join(kinds) + " |",
              "|---|" + "---:|" * len(kinds)]
    for r in results:
        cells = []
        for k in kinds:
            oks = [ok for item, _, ok, _ in r["rows"] if item.kind == k]
            cells.append(f"{sum(oks)}/{len(oks)}")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    for r in results:
        misses = [(item, reply, ok, v) for item, reply, ok, v in r["rows"] if not ok or v]
        if misses:
            lines += ["", f"{r['model']}: wrong or badly spoken", ""]
            for item, reply, ok, v in misses:
                why = ", ".join((["wrong"] if not ok else []) + v)
                said = " ".join(reply.text.split())[:160]
                lines.append(f"- {item.turns[-1]!r} ({why}): {said!r}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["quality", "fast", "tiny"])
    ap.add_argument("--quick", action="store_true", help="only the items marked quick, no prefix-cache run")
    ap.add_argument("--threads", type=int, default=2, help="TALKER_THREADS for the service")
    ap.add_argument("--models-dir", default="", help="TALKER_LLM_MODELS_DIR (default: the environment's)")
    ap.add_argument("--venv-dir", default=os.environ.get("TALKER_VENV_DIR", str(ROOT / ".venv")))
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "answers.md"))
    args = ap.parse_args(argv)
    items = tuple(i for i in ITEMS if i.quick) if args.quick else ITEMS
    logs = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    results = []
    for model in args.models:
        r = run_model(model, items, args, logs)
        results.append(r)
        print(f"{model}: accuracy {r['accuracy']:.0%}, {r['violations']} spoken-form violations, "
              f"TTFT {r['ttft'] * 1000:.0f} ms, first piece {r['first_piece'] * 1000:.0f} ms, "
              f"{r['tok_s']:.1f} tok/s", file=sys.stderr)
    text = report(results, items, args)
    write_section("answers", text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
