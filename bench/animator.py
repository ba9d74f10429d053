"""Animator benchmark (runs in the animator environment, on one core):

- frames rendered per second at 512x512 by the default renderer (mesh warp, visemes, blinks and
  head sway on), render only and render + JPEG, over a real speech clip's mouth shapes;
- time to first frame after the first audio chunk (200 ms of speech) of an Animate stream, in
  process (no network), median and p95 over 20+ streams.

    PYTHONPATH=. .venv/animator/bin/python -m bench.animator   (writes out/bench/animator.md)
"""

from __future__ import annotations

import asyncio
import os
import time
import wave

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from bench.common import machine, p50, pct, table, write_section
from services.animator.config import AnimatorConfig
from services.animator.idle import Idle
from services.animator.render import FrameState
from services.animator.service import AnimatorMetrics, AnimatorStage
from services.animator.visemes import AudioWindow, MouthTracker
from services.common.config import ServerConfig
from talker.v1 import animator_pb2 as pb
from talker.v1 import common_pb2

SPEECH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "speech.wav")
STREAMS = 24


def speech() -> tuple[np.ndarray, int]:
    with wave.open(SPEECH, "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def states(pcm: np.ndarray, rate: int, fps: int = 25) -> list[FrameState]:
    samples = pcm.astype(np.float32) / 32768.0
    audio = AudioWindow()
    audio.append(samples)
    mouth = MouthTracker(rate, fps)
    mouth.feed(samples, "My name is Talker. I open my mouth wide, then I pause. A blue moon, or a cheap beer?")
    idle = Idle(512, seed=1)
    out = []
    for i in range(round(samples.size / rate * fps)):
        shape = mouth.step(i, mouth.open.window(audio, i))
        st = idle.state(i / fps)
        out.append(FrameState(i, i / fps, shape.openness, width=shape.width, press=shape.press, blink=st.blink,
                              head=st.head))
    return out


def fps_of(fn, frames: list[FrameState], repeat: int = 2) -> float:
    for s in frames[:10]:
        fn(s)
    t0 = time.perf_counter()
    for _ in range(repeat):
        for s in frames:
            fn(s)
    return repeat * len(frames) / (time.perf_counter() - t0)


async def first_frame(stage: AnimatorStage, pcm: np.ndarray, rate: int) -> float:
    chunk = pcm[:rate // 5].tobytes()
    sent = asyncio.Event()
    t0 = 0.0

    async def requests():
        nonlocal t0
        yield pb.AnimateRequest(config=pb.AnimateConfig(sample_rate=rate))
        t0 = time.perf_counter()
        yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=chunk, text="My name is Talker."))
        await sent.wait()

    async for _ in stage.servicer.Animate(requests(), None):
        dt = time.perf_counter() - t0
        sent.set()
        return dt
    raise RuntimeError("no frame")


def main() -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    stage = AnimatorStage(ServerConfig(threads=1), AnimatorConfig(), AnimatorMetrics(CollectorRegistry()))
    stage.load()
    try:
        pcm, rate = speech()
        frames = states(pcm, rate)
        be, entry = stage.backend, stage.backend.default
        render = fps_of(lambda s: be.render(entry, s), frames)
        jpeg = fps_of(lambda s: be.frame(entry, s, common_pb2.FRAME_FORMAT_JPEG, 85), frames)
        ttff = [asyncio.run(first_frame(stage, pcm, rate)) for _ in range(STREAMS)]
    finally:
        asyncio.run(stage.close())
    rows = [["machine", machine()],
            ["renderer", f"{be.name}, 512x512, visemes + blinks + head sway, {len(frames)} frames of speech"],
            ["fps on one core, render only", f"{render:.0f} (target >= 100)"],
            ["fps on one core, render + JPEG q85", f"{jpeg:.0f}"],
            ["time to first frame after the first 200 ms audio chunk",
             f"median {p50(ttff) * 1000:.1f} ms, p95 {pct(ttff, 95) * 1000:.1f} ms ({STREAMS} streams)"]]
    text = "## Animator\n\n" + table(["", "value"], rows) + \
        "\n\nCommand: `make bench-animator` (`PYTHONPATH=. .venv/animator/bin/python -m bench.animator`).\n"
    path = write_section("animator", text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
