"""A long-lived client of one stage, as the gateway holds them: one channel with the gateway's own
options (round_robin, DNS re-resolution) to TARGET, a short Transcribe call every 0.2 s until killed.
Run by test_scale_out.py inside its own mount namespace, where /etc/hosts is a file the test rewrites."""

from __future__ import annotations

import sys
import time

import grpc

from gateway.stages import channel_options
from talker.v1 import asr_pb2, asr_pb2_grpc

SILENCE = bytes(3200)  # 0.1 s of 16 kHz PCM16


def requests():
    yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=16000))
    yield asr_pb2.TranscribeRequest(audio=SILENCE)


def main(target: str) -> None:
    with grpc.insecure_channel(target, options=channel_options(8 << 20)) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        while True:
            try:
                for _ in stub.Transcribe(requests(), timeout=10):
                    pass
            except grpc.RpcError as exc:
                print(f"call failed: {exc.code().name}: {exc.details()}", file=sys.stderr, flush=True)
            time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv[1])
