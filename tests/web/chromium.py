"""Headless Debian Chromium with a fake microphone playing a WAV, for the browser tests and the benchmark."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import wave
from pathlib import Path

CHROMIUM = os.environ.get("TALKER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TALKER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         # WebRTC over loopback: host candidates on 127.0.0.1, not mDNS names.
         "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
         # The page plays the reply without a click (as after Start).
         "--autoplay-policy=no-user-gesture-required", "--window-size=480,800")


def chromium(url: str, wav: Path):
    """A WebDriver on a fresh profile whose microphone plays ``wav`` once, showing ``url``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="talker-chromium-")
    for flag in (*FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.talker_profile = profile
    driver.get(url)
    return driver


def close(driver) -> None:
    """Leave the page as a closing tab does (pagehide), then quit and remove the profile."""
    try:
        driver.get("about:blank")
        driver.quit()
    except Exception:  # noqa: BLE001 - already gone
        pass
    shutil.rmtree(driver.talker_profile, ignore_errors=True)


def with_silence(wav: bytes, lead: float, tail: float) -> bytes:
    with wave.open(io.BytesIO(wav)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        pcm = w.readframes(w.getnframes())
    pad = lambda s: b"\0" * (int(rate * s) * width * channels)  # noqa: E731
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setframerate(rate)
        w.setsampwidth(width)
        w.setnchannels(channels)
        w.writeframes(pad(lead) + pcm + pad(tail))
    return out.getvalue()


def join_wavs(*wavs: bytes) -> bytes:
    """WAV files of one format, one after the other."""
    frames, params = [], None
    for data in wavs:
        with wave.open(io.BytesIO(data)) as w:
            params = params or w.getparams()
            frames.append(w.readframes(w.getnframes()))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(b"".join(frames))
    return out.getvalue()
