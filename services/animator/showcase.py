"""Regenerates the pictures in docs/animator from the real renderer and servicer:

- ``contact_sheet.png``: labelled tiles of the default portrait for mouth shapes (closed, A, O, E,
  M/B/P, T/D/L with the tongue tip, U/W), a blink, a lid half down and glances;
- ``talking.mp4``: tests/data/speech.wav (real Piper speech) streamed through Animate in 200 ms
  chunks with each sentence's text, as the gateway sends it, then a second of silence (idle).

    PYTHONPATH=. .venv/animator/bin/python -m services.animator.showcase [out_dir]
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from services.animator.config import AnimatorConfig
from services.animator.mp4 import assemble_mp4
from services.animator.render import FrameState
from services.animator.service import AnimatorMetrics, AnimatorStage
from services.common.config import ServerConfig
from talker.v1 import animator_pb2 as pb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEECH = os.path.join(ROOT, "tests", "data", "speech.wav")
SENTENCES = (("My name is Talker.", 20062), ("I open my mouth wide, then I pause.", 42539),
             ("A blue moon, or a cheap beer?", 31765))
# The viseme shapes of services/animator/visemes.py at full loudness.
TILES = (("closed", FrameState(0, 0.0, 0.0)),
         ("A", FrameState(0, 0.0, 0.8, width=0.15)),
         ("O", FrameState(0, 0.0, 0.7, width=-0.9)),
         ("E", FrameState(0, 0.0, 0.6, width=0.6)),
         ("M/B/P", FrameState(0, 0.0, 0.0, press=1.0)),
         ("T/D/L", FrameState(0, 0.0, 0.5, width=0.2, tongue=1.0)),
         ("U/W", FrameState(0, 0.0, 0.4, width=-1.0)),
         ("blink", FrameState(0, 0.0, 0.0, blink=1.0)),
         ("lid half down", FrameState(0, 0.0, 0.0, blink=0.5)),
         ("glance right", FrameState(0, 0.0, 0.0, gaze=(1.0, 0.2))),
         ("glance left", FrameState(0, 0.0, 0.0, gaze=(-1.0, 0.0))),
         ("A, looking up", FrameState(0, 0.0, 0.8, width=0.15, gaze=(0.0, 1.0))))


def face_box(stage: AnimatorStage) -> tuple[int, int, int]:
    """x0, y0 and side of a square around the default portrait's face."""
    lm = stage.backend.default.avatar.landmarks
    x0, x1 = lm[:, 0].min(), lm[:, 0].max()
    y0, y1 = lm[:, 1].min(), lm[:, 1].max()
    side = int(max(x1 - x0, y1 - y0) * 1.15)
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2 + 0.04 * side)
    return max(cx - side // 2, 0), max(cy - side // 2, 0), side


def contact_sheet(stage: AnimatorStage, path: str) -> None:
    entry = stage.backend.default
    x0, y0, side = face_box(stage)
    tiles = []
    for label, state in TILES:
        frame = stage.backend.render(entry, state)
        tile = frame[y0:y0 + side, x0:x0 + side]
        tile = cv2.resize(tile, (300, 300), interpolation=cv2.INTER_AREA)
        band = np.full((36, 300, 3), 250, np.uint8)
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
        cv2.putText(band, label, ((300 - tw) // 2, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (40, 40, 40), 2, cv2.LINE_AA)
        tiles.append(np.concatenate([tile, band]))
    gap = np.full((tiles[0].shape[0], 6, 3), 250, np.uint8)
    rows = [np.concatenate([t for tile in tiles[r:r + 4] for t in (tile, gap)][:-1], axis=1)
            for r in range(0, len(tiles), 4)]
    hgap = np.full((6, rows[0].shape[1], 3), 250, np.uint8)
    cv2.imwrite(path, np.concatenate([x for row in rows for x in (row, hgap)][:-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def read_speech() -> tuple[np.ndarray, int]:
    with wave.open(SPEECH, "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def talking(stage: AnimatorStage, path: str, fps: int = 25, tail_s: float = 1.5) -> int:
    pcm, rate = read_speech()
    pcm = np.concatenate([np.zeros(rate // 2, "<i2"), pcm, np.zeros(int(tail_s * rate), "<i2")])

    async def requests():
        yield pb.AnimateRequest(config=pb.AnimateConfig(sample_rate=rate, fps=fps, jpeg_quality=90))
        step = rate // 5
        yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=pcm[:rate // 2].tobytes()))
        pos = rate // 2
        for text, n in SENTENCES:
            for i in range(pos, pos + n, step):
                yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=pcm[i:min(i + step, pos + n)].tobytes(), text=text))
            pos += n
        yield pb.AnimateRequest(audio=pb.AudioSegment(pcm=pcm[pos:].tobytes()))

    async def collect():
        return [r.frame async for r in stage.servicer.Animate(requests(), None)]

    frames = asyncio.run(collect())
    # The face only, at 320 px: a clip well under a megabyte.
    x0, y0, side = face_box(stage)
    faces = (cv2.resize(cv2.imdecode(np.frombuffer(f.data, np.uint8), cv2.IMREAD_COLOR)[y0:y0 + side, x0:x0 + side],
                        (320, 320), interpolation=cv2.INTER_AREA) for f in frames)
    assemble_mp4(path, faces, fps, pcm, rate, crf=23)
    return len(frames)


def main(out_dir: str = os.path.join(ROOT, "docs", "animator")) -> None:
    os.makedirs(out_dir, exist_ok=True)
    stage = AnimatorStage(ServerConfig(), AnimatorConfig(), AnimatorMetrics(CollectorRegistry()))
    stage.load()
    try:
        contact_sheet(stage, os.path.join(out_dir, "contact_sheet.png"))
        n = talking(stage, os.path.join(out_dir, "talking.mp4"))
    finally:
        asyncio.run(stage.close())
    for name in ("contact_sheet.png", "talking.mp4"):
        p = os.path.join(out_dir, name)
        print(f"{p}: {os.path.getsize(p) / 1024:.0f} KB")
    print(f"{n} frames")


if __name__ == "__main__":
    main(*sys.argv[1:2])
