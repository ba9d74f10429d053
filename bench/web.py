"""The browser's view of latency: from the end of the spoken question to the first avatar frame painted
in headless Chromium, per transport, beside the gateway's own time to first frame.

Each turn is a fresh page whose fake microphone plays the question once (made by the stack's TTS, with a
second of silence before it), so the end of speech is known on the page's clock: the moment the page
opened the microphone plus where the sound ends in the WAV (the TTS's trailing silence excluded). The
difference between the two figures is the web service, the transport and the browser (and where the
gateway's voice activity detector puts the end of speech). Runs in .venv/web (`make bench-web`) -> out/bench/web.md.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import OUT, p50, pct, table, write_section
from services.common.audio import read_wav
from stack.local import Stack
from tests.web.chromium import chromium, close, with_silence

QUESTION = "What is the capital of France?"
LEAD = 1.0


def last_sound(wav: bytes) -> float:
    """Where speech ends in ``wav``, seconds: the TTS pads its audio with silence, which is not speech."""
    samples, rate = read_wav(wav)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    return float(loud[-1] + 1) / rate


def wait(driver, script: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"{script}: not within {timeout:.0f} s "
                       f"({driver.execute_script('return [talker.state, talker.message]')})")


def one_turn(url: str, wav_path, speech_end: float, push_to_talk: bool) -> tuple[float, float]:
    """(end of speech -> first frame painted, the gateway's time to first frame), seconds."""
    driver = chromium(url, wav_path)
    try:
        wait(driver, "talker.state === 'listening'", 60)
        if push_to_talk:  # Send exactly when speech ends: the gateway's clock starts there too
            wait(driver, f"performance.now() - talker.micStartedAt >= {speech_end * 1000:.0f}", 60)
            driver.execute_script("talker.toggleTalk()")
        turn = wait(driver, "talker.turns[1] && talker.turns[1].done && talker.turns[1].firstFramePainted "
                            "&& [talker.turns[1].firstFramePainted - talker.micStartedAt, "
                            "talker.turns[1].summary.gateway_first_frame]", 180)
        return turn[0] / 1000 - speech_end, turn[1]
    finally:
        close(driver)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10, help="turns per transport")
    parser.add_argument("--offset", type=int, default=800, help="port offset of the benchmark stack")
    parser.add_argument("--turn-detection", choices=("client", "server"), default="server",
                        help="client: the page's Send at the end of speech (push-to-talk); server: hands-free")
    args = parser.parse_args()
    push_to_talk = args.turn_detection == "client"
    stack = Stack(run_dir=OUT / "stack-web", port_offset=args.offset, web=True,
                  service_env={"web": {"TALKER_WEB_TURN_DETECTION": args.turn_detection}})
    stack.stop()
    stack.start()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        stack.wait_serving(300)
        wav = stack.speak(QUESTION)
        speech_end = LEAD + last_sound(wav)
        wav_path = OUT / "web-question.wav"
        wav_path.write_bytes(with_silence(wav, LEAD, 2.0))
        for transport in ("webrtc", "ws"):
            url = f"{stack.web_url}?autostart=1&transport={transport}"
            one_turn(url, wav_path, speech_end, push_to_talk)  # warm-up
            results[transport] = []
            for i in range(args.turns):
                results[transport].append(one_turn(url, wav_path, speech_end, push_to_talk))
                browser, gateway = results[transport][-1]
                print(f"{transport} turn {i + 1}: painted {browser:.3f} s, gateway first frame {gateway:.3f} s",
                      file=sys.stderr)
    finally:
        stack.stop()

    rows = []
    for transport, pairs in results.items():
        browser, gateway = [p[0] for p in pairs], [p[1] for p in pairs]
        rows.append([transport, len(pairs), p50(browser), pct(browser, 95), p50(gateway), pct(gateway, 95),
                     p50([b - g for b, g in pairs])])
    mode = ("push-to-talk: the page's Send pressed as speech ends" if push_to_talk
            else "hands-free: the server finds the end of the turn")
    text = f"""## Browser: end of question to first frame painted (`make bench-web`)

Headless Chromium on the same machine as the stack (loopback), one fresh page per turn,
{mode}.
Browser = from the end of speech in the fake microphone's WAV to the first reply frame the page painted
(requestVideoFrameCallback for WebRTC, the canvas draw for WebSocket); gateway = the turn summary's time
to first frame. The difference is the web service, the transport and the browser. Seconds.

{table(["transport", "turns", "browser p50", "browser p95", "gateway p50", "gateway p95", "difference p50"], rows)}
"""
    print(write_section("web", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
