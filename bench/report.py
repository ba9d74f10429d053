"""Collects out/bench/*.md into docs/benchmarks.md with the machine and the command."""

from __future__ import annotations

import datetime
import sys

from bench.common import OUT, ROOT, commit, machine

ORDER = ["pipeline", "voice", "web", "llm", "answers", "tts", "animator", "capacity", "soak", "images"]


def main() -> int:
    sections = sorted(OUT.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    if not sections:
        print("no benchmark results in out/bench; run make bench", file=sys.stderr)
        return 1
    head = f"""# Benchmarks

Produced by `make bench` on {datetime.date.today().isoformat()}, commit {commit()}.
Machine: {machine()}. All models are the embedded defaults on the CPU; every other service of the stack
runs on the same two cores, so the numbers are for the whole system sharing them.
"""
    body = "\n\n".join(p.read_text().strip() for p in sections)
    (ROOT / "docs" / "benchmarks.md").write_text(head + "\n" + body + "\n")
    print(f"wrote docs/benchmarks.md from {', '.join(p.stem for p in sections)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
