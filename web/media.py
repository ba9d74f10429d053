"""The avatar as the browser should see and hear it: reply audio and frames on one playhead.

Both transports feed a ``Playout`` with the gateway's media events. The WebRTC tracks pull from
it in real time: the audio track takes 20 ms at a time, which advances the turn's playhead; the
video track shows the newest frame whose pts the playhead has reached, so picture and sound share
the turn's clock (the pts the animator stamped) however the network delays each. Between turns
the newest idle frame is shown.
"""

from __future__ import annotations

import collections
import fractions

import av
import numpy as np

from services.common.media import decode_jpeg

RATE = 48000            # WebRTC's Opus clock
PACKET = RATE // 50     # 20 ms


class Playout:
    def __init__(self, metrics, transport: str, on_played=lambda turn: None):
        self.metrics = metrics
        self.on_played = on_played         # called once a finished turn's audio has all been played
        self.transport = transport
        self.turn = 0
        self._audio = collections.deque()  # np.int16 arrays at RATE
        self._buffered = 0
        self._played_in_turn = 0           # samples of this turn's audio already played
        self._frames = collections.deque()  # (pts, jpeg) of this turn, in pts order
        self._idle: bytes | None = None
        self._resampler = None
        self._in_reply = False
        self.first_frame_turn = 0          # the last turn whose first frame was shown
        self._drop_through = 0             # media of turns up to this one is not played (flushed)
        self._ending = 0                   # a turn whose summary came: played once its audio runs out

    # -- from the gateway -------------------------------------------------------

    def start_turn(self, turn: int) -> bool:
        """False for media of a turn that was stopped."""
        if turn <= self._drop_through:
            return False
        if turn != self.turn:
            self.flush()
            self.turn = turn
        return True

    def flush(self) -> None:
        """Barge-in or a cancelled turn: drop what has not played yet, and what is still to come of it."""
        self._drop_through = self.turn
        self._audio.clear()
        self._buffered = 0
        self._played_in_turn = 0
        dropped = len(self._frames)
        if dropped:
            self.metrics.frames_dropped.labels(self.transport).inc(dropped)
        self._frames.clear()
        self._resampler = None
        self._in_reply = False

    def add_audio(self, turn: int, chunk) -> None:
        if not self.start_turn(turn):
            return
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pcm = np.frombuffer(chunk.pcm, np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = chunk.sample_rate
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.int16)
            self._audio.append(samples)
            self._buffered += samples.size
        self._in_reply = True

    def add_frame(self, turn: int, frame) -> None:
        if not self.start_turn(turn):
            return
        self._frames.append((frame.pts, frame.data))

    def add_idle(self, frame) -> None:
        self._idle = frame.data

    def end_turn(self, turn: int) -> None:
        """The turn's summary arrived: nothing more will come for it."""
        self._in_reply = False
        self._ending = turn

    # -- to the tracks ----------------------------------------------------------

    @property
    def playhead(self) -> float:
        return self._played_in_turn / RATE

    def next_audio(self) -> np.ndarray:
        """20 ms of audio: the reply's when it is there, else silence."""
        out = np.zeros(PACKET, np.int16)
        filled = 0
        while filled < PACKET and self._audio:
            head = self._audio[0]
            take = min(PACKET - filled, head.size)
            out[filled:filled + take] = head[:take]
            filled += take
            if take == head.size:
                self._audio.popleft()
            else:
                self._audio[0] = head[take:]
        self._buffered -= filled
        self._played_in_turn += filled
        if self._ending and not self._audio:
            self.on_played(self._ending)
            self._ending = 0
        if filled < PACKET and self._in_reply and self._frames:
            # Reply audio due but not there while the turn still has frames to show.
            self.metrics.audio_underruns.labels(self.transport).inc()
        return out

    def next_frame(self) -> tuple[bytes | None, bool]:
        """The JPEG to show now and whether it is a reply frame; older reply frames are dropped."""
        shown = None
        while self._frames and self._frames[0][0] <= self.playhead:
            if shown is not None:
                self.metrics.frames_dropped.labels(self.transport).inc()
            shown = self._frames.popleft()[1]
        if shown is not None:
            return shown, True
        if not self._frames and not self._buffered:
            return self._idle, False
        return None, False


def audio_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


def video_frame(jpeg: bytes) -> av.VideoFrame:
    return decode_jpeg(jpeg)
