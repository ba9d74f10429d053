"""Bounded soak: N concurrent sessions asking turn after turn for a fixed time.

Pass criteria (the exit status says whether they held):
- zero failed turns;
- each service's resident memory grows by at most 10 % from the end of the warm-up to the end;
- each service's Prometheus series count is the same after the warm-up and at the end (no label leak).

Writes out/bench/soak.md. ``make bench-soak`` runs 4 sessions for 10 minutes; ``--minutes 1`` checks it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import OUT, p50, pct, table, write_section
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc

QUESTIONS = ["What do you like about autumn?", "How do bees make honey?", "Why is the sky blue?",
             "What is a good breakfast?", "How do trains work?", "Tell me about the moon."]
CONFIG = gateway_pb2.SessionConfig(system_prompt="Answer in one or two short sentences.", max_reply_tokens=48)
MAX_GROWTH = 0.10


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def series(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return sum(1 for line in resp.read().decode().splitlines() if line and not line.startswith("#"))


def snapshot(stack: Stack) -> dict[str, tuple[float, int]]:
    return {name: (rss_mib(svc.pid()), series(svc.metrics_url)) for name, svc in stack.services.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--warmup-fraction", type=float, default=0.2, help="of the run, before the baseline")
    ap.add_argument("--port-offset", type=int, default=700)
    ap.add_argument("--out", default=str(OUT / "soak.md"))
    args = ap.parse_args(argv)

    stack = Stack(run_dir=OUT / "soak-stack", port_offset=args.port_offset)
    stack.stop()
    stack.start()
    try:
        stack.wait_serving(timeout=300)
        return soak(stack, args)
    finally:
        stack.stop()


def soak(stack: Stack, args) -> int:
    start = snapshot(stack)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    lock = threading.Lock()
    turns: list[float] = []
    failures: list[str] = []

    def session(i: int) -> None:
        with stack.channel("gateway", [("grpc.max_receive_message_length", 64 << 20)]) as ch:
            stub = gateway_pb2_grpc.GatewayServiceStub(ch)
            n = i
            while time.monotonic() < end:
                n += 1

                def requests(q=QUESTIONS[n % len(QUESTIONS)]):
                    yield gateway_pb2.ConverseRequest(config=CONFIG)
                    yield gateway_pb2.ConverseRequest(text=q)
                t = time.monotonic()
                try:
                    events = list(stub.Converse(requests(), timeout=300, metadata=stack.client.metadata()))
                    bad = [e.error for e in events if e.WhichOneof("event") == "error"]
                    ok = events and events[-1].WhichOneof("event") == "summary" and not bad
                    with lock:
                        (turns.append(time.monotonic() - t) if ok else
                         failures.append(f"session {i}: {bad[0] if bad else 'no summary'}"))
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    with lock:
                        failures.append(f"session {i}: {exc!r}"[:300])

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(args.sessions)]
    for th in threads:
        th.start()
    # Warm-up: the first fraction of the run and at least two turns per session (every label
    # value and every model buffer has been seen once), whichever is later.
    warm_until = t0 + args.warmup_fraction * args.minutes * 60
    while time.monotonic() < end and (time.monotonic() < warm_until or len(turns) < 2 * args.sessions):
        time.sleep(0.5)
    warm = snapshot(stack)
    warm_at = time.monotonic() - t0
    warm_turns = len(turns)
    for th in threads:
        th.join()
    final = snapshot(stack)
    elapsed = time.monotonic() - t0

    rows, ok = [], not failures and turns
    for name in stack.services:
        growth = final[name][0] / warm[name][0] - 1
        same = final[name][1] == warm[name][1]
        ok = ok and growth <= MAX_GROWTH and same
        rows.append([name, f"{start[name][0]:.0f}", f"{warm[name][0]:.0f}", f"{final[name][0]:.0f}",
                     f"{100 * growth:+.1f} %", f"{warm[name][1]} -> {final[name][1]}",
                     "ok" if growth <= MAX_GROWTH and same else "FAIL"])
    text = f"""## Soak

{args.sessions} sessions asking turn after turn (text in, audio and frames out) for {args.minutes:g} minutes
(`python -m bench.soak --minutes {args.minutes:g} --sessions {args.sessions}`); the first
{100 * args.warmup_fraction:.0f} % and at least two turns per session is warm-up (here {warm_at:.0f} s), the
baseline for memory growth and series count.

Turns: {len(turns)} completed ({len(turns) - warm_turns} after warm-up), **{len(failures)} failed**;
{60 * len(turns) / elapsed:.1f} turns/min; turn time p50 {p50(turns) if turns else float('nan'):.2f} s,
p95 {pct(turns, 95) if turns else float('nan'):.2f} s.

Resident memory (MiB) and Prometheus series per service:

{table(["service", "RSS start", "RSS after warm-up", "RSS end", "growth", "series", "check"], rows)}

Result: **{"PASS" if ok else "FAIL"}** (criteria: zero failed turns, RSS growth <= {100 * MAX_GROWTH:.0f} % after
warm-up, constant series count).
"""
    if failures:
        text += "\nFailures (first 10):\n\n" + "\n".join(f"- {f}" for f in failures[:10]) + "\n"
    write_section("soak", text, Path(args.out))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
