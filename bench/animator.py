"""Animator benchmark (runs in the animator environment, on one core):

- frames rendered per second at 512x512 by the default renderer (mesh warp, visemes, blinks,
  glances and head sway on), render only and render + JPEG, over a real speech clip's mouth shapes, side by
  side with the renderer as it was before the phoneme-timed face (``BASELINE``, read from git
  history) on the same frames, interleaved so that the machine's load hits both alike;
- time to first frame after the first audio chunk (200 ms of speech) of an Animate stream, in
  process (no network), median and p95 over 20+ streams, with the text path and with phoneme
  timings, for the default renderer and (as a plug-in renderer) ``BASELINE``'s, streams interleaved.

    PYTHONPATH=. .venv/animator/bin/python -m bench.animator   (writes out/bench/animator.md)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import types
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
# The renderer before the phoneme-timed face (mouth with pressed lips that thin, lids that meet,
# the warp composed with the head's sway), for the side-by-side throughput.
BASELINE = "c187273"


def baseline_renderer():
    """``BASELINE``'s MeshWarpRenderer, loaded from git history; None without it (a shallow clone)."""
    try:
        src = subprocess.run(["git", "show", f"{BASELINE}:services/animator/mesh.py"], capture_output=True,
                             check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("baseline_mesh")
    sys.modules[module.__name__] = module   # its dataclasses look their module up
    exec(compile(src, f"{BASELINE}:services/animator/mesh.py", "exec"), module.__dict__)
    return module.MeshWarpRenderer(0.3)


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
        out.append(FrameState(i, i / fps, shape.openness, width=shape.width, press=shape.press, tongue=shape.tongue,
                              blink=st.blink, brows=st.brows, head=st.head, gaze=st.gaze))
    return out


def fps_of(fn, frames: list[FrameState], repeat: int = 2) -> float:
    """Frames per second of this thread's CPU time (one core, OpenCV on one thread): what other
    processes on a shared machine take is not counted against it, as wall-clock time would."""
    for s in frames[:10]:
        fn(s)
    t0 = time.thread_time()
    for _ in range(repeat):
        for s in frames:
            fn(s)
    return repeat * len(frames) / (time.thread_time() - t0)


# The first 200 ms of speech.wav as Piper aligned it ("My name" and the start of "is").
PHONEMES = [common_pb2.PhonemeTiming(phoneme=p, start_seconds=s, duration_seconds=d) for p, s, d in (
    ("^", 0.0, 0.035), ("m", 0.035, 0.058), ("a", 0.093, 0.046), ("ɪ", 0.139, 0.035), (" ", 0.174, 0.023),
    ("n", 0.197, 0.046))]


async def first_frame(stage: AnimatorStage, pcm: np.ndarray, rate: int, phonemes: bool = False) -> float:
    chunk = pcm[:rate // 5].tobytes()
    sent = asyncio.Event()
    t0 = 0.0

    async def requests():
        nonlocal t0
        yield pb.AnimateRequest(config=pb.AnimateConfig(sample_rate=rate))
        t0 = time.perf_counter()
        yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=chunk, text="My name is Talker.",
                                                      phonemes=PHONEMES if phonemes else ()))
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
        old = baseline_renderer()
        old_prepared = old.prepare(entry.avatar) if old else None
        new_render, old_render, new_jpeg, old_jpeg = [], [], [], []
        for _ in range(3):   # interleaved rounds: the machine's load hits both renderers alike
            new_render.append(fps_of(lambda s: be.render(entry, s), frames, repeat=1))
            new_jpeg.append(fps_of(lambda s: be.encode(be.render(entry, s), common_pb2.FRAME_FORMAT_JPEG, 85),
                                   frames, repeat=1))
            if old:
                old_render.append(fps_of(lambda s: old.render(old_prepared, s), frames, repeat=1))
                old_jpeg.append(fps_of(lambda s: be.encode(old.render(old_prepared, s),
                                                           common_pb2.FRAME_FORMAT_JPEG, 85), frames, repeat=1))
        old_stage = None
        if old:   # the same service with the old renderer plugged in (its module is in sys.modules)
            old_stage = AnimatorStage(ServerConfig(threads=1),
                                      AnimatorConfig(renderer="baseline_mesh:MeshWarpRenderer"),
                                      AnimatorMetrics(CollectorRegistry()))
            old_stage.load()
        ttff, ttff_ph, old_ttff, old_ttff_ph = [], [], [], []
        for _ in range(STREAMS):   # interleaved, as the throughput rounds
            ttff.append(asyncio.run(first_frame(stage, pcm, rate)))
            ttff_ph.append(asyncio.run(first_frame(stage, pcm, rate, phonemes=True)))
            if old_stage:
                old_ttff.append(asyncio.run(first_frame(old_stage, pcm, rate)))
                old_ttff_ph.append(asyncio.run(first_frame(old_stage, pcm, rate, phonemes=True)))
        if old_stage:
            asyncio.run(old_stage.close())
    finally:
        asyncio.run(stage.close())
    render, jpeg = p50(new_render), p50(new_jpeg)
    rows = [["machine", machine()],
            ["renderer", f"{be.name}, 512x512, visemes + tongue + blinks + glances + head sway, "
                         f"{len(frames)} frames of speech"],
            ["fps per core-second of CPU time, render only", f"{render:.0f} (target >= 100)"],
            ["fps per core-second of CPU time, render + JPEG q85", f"{jpeg:.0f}"]]
    if old:
        rows += [[f"renderer before the phoneme-timed face ({BASELINE}), render only",
                  f"{p50(old_render):.0f}: new/old {render / p50(old_render):.2f}x (target >= 0.8x)"],
                 [f"renderer before the phoneme-timed face ({BASELINE}), render + JPEG q85",
                  f"{p50(old_jpeg):.0f}: new/old {jpeg / p50(old_jpeg):.2f}x"]]
    else:
        rows.append(["renderer before the phoneme-timed face", f"not measured: {BASELINE} is not in this clone"])
    rows += [["time to first frame after the first 200 ms audio chunk, text",
              f"median {p50(ttff) * 1000:.1f} ms, p95 {pct(ttff, 95) * 1000:.1f} ms ({STREAMS} streams)"],
             ["the same with the voice's phoneme timing",
              f"median {p50(ttff_ph) * 1000:.1f} ms, p95 {pct(ttff_ph, 95) * 1000:.1f} ms ({STREAMS} streams)"]]
    if old_ttff:
        rows += [[f"the same, text, with the renderer of {BASELINE}",
                  f"median {p50(old_ttff) * 1000:.1f} ms, p95 {pct(old_ttff, 95) * 1000:.1f} ms"],
                 [f"the same, phoneme timing, with the renderer of {BASELINE}",
                  f"median {p50(old_ttff_ph) * 1000:.1f} ms, p95 {pct(old_ttff_ph, 95) * 1000:.1f} ms"]]
    text = "## Animator\n\n" + table(["", "value"], rows) + \
        "\n\nCommand: `make bench-animator` (`PYTHONPATH=. .venv/animator/bin/python -m bench.animator`).\n"
    path = write_section("animator", text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
