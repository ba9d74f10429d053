"""``talker``: talk to a digital human from the command line, and run the local stack.

    talker up                      start the five services (and the web page), wait until all are SERVING
    talker ask "Hello there"       one turn from text -> out/reply.mp4
    talker ask --wav question.wav  one turn from speech (--json: the turn's summary as JSON)
    talker converse --wav talk.wav a hands-free conversation: the recording streams in real time as a
                                   microphone; the server finds the turns (--json: one summary a line)
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
import numpy as np
from google.protobuf import json_format

from gateway.client import ClientSecurity, health, microphone_chunks
from services.common.audio import pcm16_to_float, read_wav
from services.common.media import decode_jpeg, rgb_frame, write_mp4
from services.common.metrics import VERSION
from services.common.registry import local_target
from talker.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DEFAULT_QUESTION = "Hello! Who are you, and what can you do?"


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stack(stack_class):
    """The local stack, with the web page when its environment is installed (make setup builds it)."""
    from stack.process import venv_dir

    return stack_class(web=(venv_dir() / "web" / "bin" / "python").exists())


def cmd_up(args) -> int:
    from stack.local import Stack  # the local stack is not part of the gateway's image

    stack = _stack(Stack)
    stack.start()
    _progress(f"starting {', '.join(stack.services)} (logs in out/stack/*.log) ...")
    t0 = time.monotonic()
    stack.wait_serving(args.timeout, progress=lambda n: _progress(f"  {n:9s} SERVING after "
                                                                    f"{time.monotonic() - t0:.1f} s"))
    print_endpoints(stack)
    return 0


def print_endpoints(stack) -> None:
    print("\nTalker is up:")
    for name, svc in stack.services.items():
        print(f"  {name:9s} {_protocol(name)} {svc.target:16s} metrics {svc.metrics_url}")
    _print_page(stack)


def _protocol(name: str) -> str:
    return "HTTP" if name == "web" else "gRPC"


def _print_page(stack) -> None:
    if "web" in stack.services:
        print(f"\nOpen {stack.web_url} in a browser on this machine and press Start to talk to the avatar.")


def cmd_down(args) -> int:
    from stack.local import Stack

    Stack(web=True).stop()
    _progress("stopped")
    return 0


def cmd_status(args) -> int:
    """Health of the local stack's services, or of one gateway (--target: port-forwarded or remote)."""
    stack = None
    if args.target:
        security = ClientSecurity.from_env()
        with security.channel(args.target) as ch:
            rows = [{"service": "gateway", "status": health(ch, 2.0, security.metadata()), "target": args.target}]
    else:
        from stack.local import Stack

        stack = _stack(Stack)
        rows = [{"service": name, "status": stack.health(name), "target": svc.target, "metrics": svc.metrics_url}
                for name, svc in stack.services.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            metrics = f" metrics {row['metrics']}" if "metrics" in row else ""
            print(f"{row['service']:9s} {row['status']:12s} {_protocol(row['service'])} {row['target']:16s}{metrics}")
        if stack is not None:
            _print_page(stack)
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
    security = _security(args)
    with security.channel(args.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        result = collect_turn(gateway_pb2_grpc.GatewayServiceStub(ch).Ask(request, timeout=args.timeout,
                                                                   metadata=security.metadata()),
                              show=not (args.quiet or args.json))
    if result is None:
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_mp4(result, out)
    if args.json:
        print(summary_json(result["summary"]))
    else:
        print_summary(result["summary"], out)
    return 0


def _security(args) -> ClientSecurity:
    return ClientSecurity.from_env(ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                                   server_name=args.server_name)


def summary_json(summary: gateway_pb2.TurnSummary) -> str:
    """One line of JSON: protobuf's JSON mapping with the proto field names, zero values included (so
    every turn's line has the same keys)."""
    return json_format.MessageToJson(summary, preserving_proto_field_name=True, indent=None,
                                     always_print_fields_with_no_presence=True)


def cmd_converse(args) -> int:
    samples, rate = read_wav(Path(args.wav).read_bytes())
    samples = np.concatenate([samples, np.zeros(int(args.trailing_silence * rate), np.float32)])
    config = gateway_pb2.SessionConfig(voice=args.voice, turn_detection=gateway_pb2.TURN_DETECTION_SERVER,
                                       input_sample_rate=rate, max_reply_tokens=args.max_reply_tokens)

    def requests():
        yield gateway_pb2.ConverseRequest(config=config)
        for pcm in microphone_chunks(samples, rate, speed=args.speed):
            yield gateway_pb2.ConverseRequest(audio=pcm)

    security = _security(args)
    show = (lambda *_: None) if args.json else _progress
    failed = False
    with security.channel(args.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        try:
            for ev in gateway_pb2_grpc.GatewayServiceStub(ch).Converse(requests(), timeout=args.timeout,
                                                                       metadata=security.metadata()):
                kind = ev.WhichOneof("event")
                if kind == "speech_started":
                    show(f"[turn {ev.turn}] speech at {ev.speech_started.audio_offset_seconds:.2f} s"
                         + ("  (barge-in: the reply in flight is stopped)" if ev.speech_started.barge_in else ""))
                elif kind == "end_of_turn":
                    e = ev.end_of_turn
                    reason = gateway_pb2.EndOfTurnReason.Name(e.reason).removeprefix("END_OF_TURN_REASON_").lower()
                    show(f"[turn {ev.turn}] end of turn ({reason}, p={e.completion_probability:.2f}) "
                         f"{e.delay_seconds:.2f} s after the speech ended")
                elif kind == "summary":
                    if args.json:
                        print(summary_json(ev.summary), flush=True)
                    else:
                        print_turn(ev.turn, ev.summary)
                elif kind == "error":
                    failed = True
                    code = common_pb2.ErrorCode.Name(ev.error.code).removeprefix("ERROR_CODE_")
                    _progress(f"[turn {ev.turn}] failed in {ev.error.stage}: {code}: {ev.error.message}")
        except grpc.RpcError as exc:
            _progress(f"error: {exc.code().name}: {exc.details()}")
            return 1
    return int(failed)


def print_turn(number: int, s: gateway_pb2.TurnSummary) -> None:
    print(f"[turn {number}] you:    {s.transcript}")
    print(f"[turn {number}] talker: {s.reply}" + ("  (interrupted)" if s.cancelled else ""))
    def at(seconds: float) -> str:  # 0: the turn never got there (cancelled first)
        return f"{seconds:.2f} s" if seconds else "-"

    print(f"[turn {number}] from the end of speech: end of turn {s.end_of_turn_delay_seconds:.2f} s, "
          f"transcript {at(s.time_to_transcript_seconds)}, first token {at(s.time_to_first_token_seconds)}, "
          f"first audio {at(s.time_to_first_audio_seconds)}, first frame {at(s.time_to_first_frame_seconds)}, "
          f"turn {s.turn_seconds:.2f} s", flush=True)


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
    ask.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ask.add_argument("--json", action="store_true", help="print the TurnSummary as JSON (proto field names)")
    talk = sub.add_parser("converse", help="a hands-free conversation from a recording streamed in real time")
    talk.add_argument("--wav", required=True, help="the recording (PCM16 WAV, any rate), played as a microphone")
    talk.add_argument("--trailing-silence", type=float, default=3.0, help="seconds of silence after it")
    talk.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time)")
    talk.add_argument("--voice", default="", help="a voice name (empty: the TTS service's default)")
    talk.add_argument("--max-reply-tokens", type=int, default=0, help="reply length limit (0: the default)")
    talk.add_argument("--json", action="store_true", help="print each TurnSummary as one line of JSON")
    for p, timeout in ((ask, 180.0), (talk, 600.0)):
        p.add_argument("--target", default=local_target("gateway"), help="host:port of the gateway")
        p.add_argument("--timeout", type=float, default=timeout, help="deadline of the call, seconds")
        p.add_argument("--ca", help="TLS: the CA that signed the gateway's certificate "
                                    "(env TALKER_CLIENT_TLS_CA_FILE)")
        p.add_argument("--cert", help="mTLS: client certificate (env TALKER_CLIENT_TLS_CERT_FILE)")
        p.add_argument("--key", help="mTLS: client key (env TALKER_CLIENT_TLS_KEY_FILE)")
        p.add_argument("--server-name", help="TLS: name to verify instead of the target's host")
    # The API key comes from TALKER_API_KEY only: a flag would show it in `ps` and shell history.
    args = parser.parse_args(argv)
    command = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ask": cmd_ask,
               "converse": cmd_converse}[args.command]
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
