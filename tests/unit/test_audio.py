import numpy as np
import pytest

from services.common.audio import float_to_pcm16, pcm16_to_float, read_wav, resample, write_wav
from services.common.errors import InvalidArgument


def test_pcm_round_trip():
    x = np.linspace(-0.9, 0.9, 101, dtype=np.float32)
    assert np.allclose(pcm16_to_float(float_to_pcm16(x)), x, atol=1e-4)


def test_odd_pcm_is_rejected():
    with pytest.raises(InvalidArgument, match="even number of bytes"):
        pcm16_to_float(b"\x00\x01\x02")


def test_wav_round_trip_and_resample():
    t = np.arange(22050) / 22050
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y, rate = read_wav(write_wav(x, 22050))
    assert rate == 22050 and np.allclose(x, y, atol=1e-4)
    z = resample(y, 22050, 16000)
    assert z.size == 16000
    # the tone survives: its dominant frequency is still 440 Hz
    assert abs(np.argmax(np.abs(np.fft.rfft(z))) - 440) <= 1


@pytest.mark.parametrize("data,needle", [(b"not a wav", "not a readable RIFF/WAVE"), (b"", "not a readable")])
def test_bad_wav(data, needle):
    with pytest.raises(InvalidArgument, match=needle):
        read_wav(data)
