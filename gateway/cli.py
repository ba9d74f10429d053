"""``talker``: talk to a digital human from the command line, and run the local stack.

    talker up                      start the five services, wait until all are SERVING
    talker ask "Hello there"       one turn from text -> out/reply.mp4
    talker ask --wav question.wav  one turn from speech
    talker status [--json] [--target HOST:PORT]
    talker down
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import grpc

from gateway.client import ClientSecurity, health
from services.common.audio import pcm16_to_float
from services.common.media import decode_jpeg, rgb_frame, write_mp4
from services.common.metrics import VERSION
from services.common.registry import local_target
from talker.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DEFAULT_QUESTION = "Hello! Who are you, and what can you do?"


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_up(args) -> int:
    from stack.local import Stack  # the local stack is not part of the gateway's image

    stack = Stack()
    stack.start()
    _progress("starting asr, llm, tts, animator, gateway (logs in out/stack/*.log) ...")
    t0 = time.monotonic()
    stack.wait_serving(args.timeout, progress=lambda n: _progress(f"  {n:9s} SERVING after "
                                                                    f"{time.monotonic() - t0:.1f} s"))
    print_endpoints(stack)
    return 0


def print_endpoints(stack) -> None:
    print("\nTalker is up:")
    for name, svc in stack.services.items():
        print(f"  {name:9s} gRPC {svc.target:16s} metrics {svc.metrics_url}")


def cmd_down(args) -> int:
    from stack.local import Stack

    Stack().stop()
    _progress("stopped")
    return 0


def cmd_status(args) -> int:
    """Health of the local stack's services, or of one gateway (--target: port-forwarded or remote)."""
    if args.target:
        security = ClientSecurity.from_env()
        with security.channel(args.target) as ch:
            rows = [{"service": "gateway", "status": health(ch, 2.0, security.metadata()), "target": args.target}]
    else:
        from stack.local import Stack

        stack = Stack()
        rows = [{"service": name, "status": stack.health(name), "target": svc.target, "metrics": svc.metrics_url}
                for name, svc in stack.services.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            metrics = f" metrics {row['metrics']}" if "metrics" in row else ""
            print(f"{row['service']:9s} {row['status']:12s} gRPC {row['target']:16s}{metrics}")
    return int(any(row["status"] != "SERVING" for row in rows))




def cmd_ask(args) -> int:
    config = gateway_pb2.SessionConfig(voice=args.voice, fps=args.fps,
                                       frame_format=common_pb2.FRAME_FORMAT_JPEG)
    if args.avatar:
        config.avatar_image = Path(args.avatar).read_bytes()
    if args.wav:
        request = gateway_pb2.AskRequest(config=config, wav=Path(args.wav).read_bytes())
    else:
        request = gateway_pb2.AskRequest(config=config, text=args.text or DEFAULT_QUESTION)
    security = ClientSecurity.from_env(ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                                       server_name=args.server_name)
    with security.channel(args.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        result = collect_turn(gateway_pb2_grpc.GatewayServiceStub(ch).Ask(request, timeout=args.timeout,
                                                                   metadata=security.metadata()),
                              show=not args.quiet)
    if result is None:
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_mp4(result, out)
    print_summary(result["summary"], out)
    return 0


def collect_turn(events, show: bool = True) -> dict | None:
    """Gather a turn's streamed events; shows progress as they arrive."""
    audio, frames, summary, rate = [], [], None, 0
    t0 = time.monotonic()
    try:
        for ev in events:
            kind = ev.WhichOneof("event")
            if kind == "transcript" and show:
                _progress(f"you:    {ev.transcript.text}")
                print("talker: ", end="", file=sys.stderr, flush=True)
            elif kind == "reply_text" and show:
                print(ev.reply_text.delta, end="", file=sys.stderr, flush=True)
            elif kind == "audio":
                audio.append(ev.audio.pcm)
                rate = ev.audio.sample_rate
            elif kind == "frame":
                frames.append(ev.frame)
                if show and len(frames) % 25 == 0:
                    print(f" [{len(frames)} frames, {time.monotonic() - t0:.1f} s]", end="", file=sys.stderr,
                          flush=True)
            elif kind == "summary":
                summary = ev.summary
            elif kind == "error":
                code = common_pb2.ErrorCode.Name(ev.error.code).removeprefix("ERROR_CODE_")
                _progress(f"\nturn failed in {ev.error.stage}: {code}: {ev.error.message}")
                return None
    except grpc.RpcError as exc:
        _progress(f"\nerror: {exc.code().name}: {exc.details()}")
        return None
    if show:
        _progress("")
    return {"audio": pcm16_to_float(b"".join(audio)), "rate": rate, "frames": frames, "summary": summary}


def save_mp4(result: dict, out: Path) -> None:
    def video():
        for f in result["frames"]:
            if f.format == common_pb2.FRAME_FORMAT_RGB24:
                yield rgb_frame(f.data, f.width, f.height)
            else:
                yield decode_jpeg(f.data)

    write_mp4(str(out), video(), result["summary"].fps or 25, result["audio"], result["rate"] or 22050)


def print_summary(s: gateway_pb2.TurnSummary, out: Path) -> None:
    print(f"wrote {out}  ({s.audio_seconds:.2f} s of audio, {s.frames} frames at {s.fps} fps)")
    print("timings (seconds from the end of your turn, on the gateway's clock):")
    for label, value in (("transcript", s.time_to_transcript_seconds), ("first token", s.time_to_first_token_seconds),
                         ("first audio", s.time_to_first_audio_seconds), ("first frame", s.time_to_first_frame_seconds),
                         ("turn end", s.turn_seconds)):
        print(f"  {label:12s} {value:6.3f}")
    print("per stage:  first output   busy   calls")
    for st in s.stages:
        print(f"  {st.stage:9s} {st.first_output_seconds:9.3f} {st.busy_seconds:8.3f} {st.calls:6d}")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default in its help."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="talker", description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"talker {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local stack and wait until it is SERVING", formatter_class=_Formatter)
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every service to be SERVING")
    sub.add_parser("down", help="stop the local stack", formatter_class=_Formatter)
    status = sub.add_parser("status", help="health of each service", formatter_class=_Formatter)
    status.add_argument("--target", default="", help="host:port of a gateway to check instead of the local stack "
                        "(e.g. one reached through kubectl port-forward)")
    status.add_argument("--json", action="store_true", help="print the health as JSON")
    ask = sub.add_parser("ask", help="one turn: text or a WAV in, an MP4 out", formatter_class=_Formatter)
    ask.add_argument("text", nargs="?", default="", help=f"the question (empty: {DEFAULT_QUESTION!r})")
    ask.add_argument("--wav", help="a spoken question (PCM16 WAV) instead of text")
    ask.add_argument("--out", default="out/reply.mp4", help="where to write the reply's video")
    ask.add_argument("--avatar", help="a portrait (JPEG/PNG) instead of the default")
    ask.add_argument("--voice", default="", help="a voice name (empty: the TTS service's default)")
    ask.add_argument("--fps", type=int, default=0, help="frames per second (0: the animator's default)")
    ask.add_argument("--target", default=local_target("gateway"), help="host:port of the gateway")
    ask.add_argument("--timeout", type=float, default=180.0, help="deadline of the turn, seconds")
    ask.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ask.add_argument("--ca", help="TLS: the CA that signed the gateway's certificate (env TALKER_CLIENT_TLS_CA_FILE)")
    ask.add_argument("--cert", help="mTLS: client certificate (env TALKER_CLIENT_TLS_CERT_FILE)")
    ask.add_argument("--key", help="mTLS: client key (env TALKER_CLIENT_TLS_KEY_FILE)")
    ask.add_argument("--server-name", help="TLS: name to verify instead of the target's host")
    # The API key comes from TALKER_API_KEY only: a flag would show it in `ps` and shell history.
    args = parser.parse_args(argv)
    command = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ask": cmd_ask}[args.command]
    try:
        return command(args)
    except KeyboardInterrupt:
        _progress("\ninterrupted")
        return 130
    except OSError as exc:  # a file named on the command line that cannot be read or written
        _progress(f"talker: {exc.filename or ''}: {exc.strerror or exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
