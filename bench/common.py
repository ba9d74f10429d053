"""Helpers shared by the benchmark scripts: the machine, percentiles, markdown tables, service processes."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path

from stack.process import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}, {gpus()}"


def gpus() -> str:
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=20, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "no GPU"
    names = [n.strip() for n in names if n.strip()]
    return ", ".join(names) if names else "no GPU"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, text: str, path: Path | None = None) -> Path:
    """A section of docs/benchmarks.md, to out/bench/<name>.md unless ``path`` says otherwise."""
    path = path or OUT / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def profile_env(spec: str, models_dir: str = "") -> dict[str, str]:
    """The stack's environment for a benchmark profile: an LLM profile (`quality`, `fast`), optionally
    with an ASR model after a plus (`fast+tiny.en`: the fastest pair on a small CPU)."""
    llm, _, asr = spec.partition("+")
    env = {"TALKER_LLM_MODEL": llm}
    if asr:
        env["TALKER_ASR_MODEL"] = asr
    if models_dir:
        env["TALKER_LLM_MODELS_DIR"] = models_dir
    return env


def start_service(label: str, python: Path, module: str, env: dict[str, str], log: Path,
                  timeout: float = 300) -> tuple[ServiceProcess, str, float]:
    """Start ``python -m module`` on free ports; (process, gRPC target, seconds until SERVING)."""
    svc = ServiceProcess(label, module, log, env=env, python=python).start()
    try:
        return svc, svc.target, svc.wait_serving(timeout)
    except RuntimeError:
        svc.stop()
        raise


def stop_service(svc: ServiceProcess) -> None:
    svc.stop()
