"""The voice loop: ASR models on the spoken-question set, hands-free turns, LLM prompt reuse.

- WER and decode time per ASR model (whisper base, base with a 10 s encoder window, tiny.en) on the
  spoken-question set (tests/spoken.py: Piper and espeak-ng at two rates), each model in its own ASR
  service, through AsrService.Transcribe;
- hands-free: a Converse session (turn_detection SERVER) with the questions streamed in real time, each
  followed by silence: first frame after the end of speech (endpointing wait included), the wait itself,
  end-of-turn reasons and the preemptive generation hit rate (gateway metrics);
- time to first token at turn 1 and turn 10 of one session (what reusing the cached prompt prefix gives).

Writes out/bench/voice.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request

import grpc
import numpy as np

from bench.common import OUT, ROOT, p50, pct, profile_env, start_service, stop_service, table, write_section
from gateway.client import microphone_chunks
from services.common.audio import float_to_pcm16
from stack.local import Stack
from talker.v1 import asr_pb2, asr_pb2_grpc, gateway_pb2, gateway_pb2_grpc
from tests.spoken import ESPEAK_RATES, QUESTIONS, RATE, espeak, silence, trimmed, wav_to_16k
from tests.system.test_spoken_questions import corpus_wer
from tests.wer import wer

MODELS = [("whisper base, beam 5 (default)", {"TALKER_ASR_MODEL": "base"}),
          ("whisper base, beam 1", {"TALKER_ASR_MODEL": "base", "TALKER_ASR_BEAM_SIZE": "1"}),
          ("whisper base, beam 5, chunk_length 10", {"TALKER_ASR_MODEL": "base", "TALKER_ASR_CHUNK_LENGTH": "10"}),
          ("whisper tiny.en, beam 5", {"TALKER_ASR_MODEL": "tiny.en"}),
          ("whisper tiny.en, beam 1", {"TALKER_ASR_MODEL": "tiny.en", "TALKER_ASR_BEAM_SIZE": "1"})]


def transcribe(stub, samples: np.ndarray) -> tuple[str, float]:
    def requests():
        yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=RATE))
        yield asr_pb2.TranscribeRequest(audio=float_to_pcm16(samples))

    final = list(stub.Transcribe(requests(), timeout=120))[-1]
    return final.text, final.processing_seconds


def gateway_metric(stack: Stack, name: str, **labels: str) -> float:
    from stack.process import metric_sum

    with urllib.request.urlopen(stack.services["gateway"].metrics_url, timeout=10) as resp:
        return metric_sum(resp.read().decode(), name, **labels)


def asr_models(voices: dict[str, list[np.ndarray]], questions: list[str]) -> list[list]:
    rows = []
    for label, env in MODELS:
        proc, target, _ = start_service("asr", ROOT / ".venv/asr/bin/python", "services.asr",
                                        dict(env, TALKER_THREADS="2"), OUT / "voice-asr.log")
        try:
            with grpc.insecure_channel(target) as ch:
                stub = asr_pb2_grpc.AsrServiceStub(ch)
                pairs, seconds = [], []
                for audios in voices.values():
                    for q, audio in zip(questions, audios, strict=True):
                        text, spent = transcribe(stub, audio)
                        pairs.append((q, text))
                        seconds.append(spent)
        finally:
            stop_service(proc)
        per_voice = [corpus_wer(pairs[i * len(questions):(i + 1) * len(questions)]) for i in range(len(voices))]
        rows.append([label, corpus_wer(pairs), *per_voice, p50(seconds), pct(seconds, 95)])
        print(f"{label}: WER {rows[-1][1]:.3f}, decode p50 {rows[-1][-2]:.3f} s", file=sys.stderr)
    return rows


def push_to_talk(piper: list[np.ndarray], release: float, rounds: int) -> list[list]:
    """Seconds from the end of a real-time Transcribe stream (the question, then `release` s of silence)
    to its transcript, with the early decode at pauses on and off (one ASR service each, alternated)."""
    waits: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for setting in waits:
            env = {"TALKER_THREADS": "2", "TALKER_ASR_EARLY_DECODE": "true" if setting == "on" else "false"}
            proc, target, _ = start_service("asr", ROOT / ".venv/asr/bin/python", "services.asr", env,
                                            OUT / "voice-asr.log")
            try:
                with grpc.insecure_channel(target) as ch:
                    stub = asr_pb2_grpc.AsrServiceStub(ch)
                    for audio in piper:
                        ended = []

                        def requests(audio=audio, ended=ended):
                            yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=RATE))
                            for pcm in microphone_chunks(np.concatenate([audio, silence(release)]), RATE):
                                yield asr_pb2.TranscribeRequest(audio=pcm)
                            ended.append(time.monotonic())

                        list(stub.Transcribe(requests(), timeout=120))
                        waits[setting].append(time.monotonic() - ended[0])
            finally:
                stop_service(proc)
    return [[f"early decode {k}", p50(v), pct(v, 95)] for k, v in waits.items()]


def hands_free(stack: Stack, piper: list[np.ndarray], questions: list[str], gap: float) -> dict:
    audio = np.concatenate([np.concatenate([a, silence(gap)]) for a in piper])
    config = gateway_pb2.SessionConfig(turn_detection=gateway_pb2.TURN_DETECTION_SERVER, max_reply_tokens=48)
    hits0, misses0 = (gateway_metric(stack, "talker_gateway_preemptive_generations_total", result=r)
                      for r in ("hit", "miss"))

    def requests():
        yield gateway_pb2.ConverseRequest(config=config)
        for pcm in microphone_chunks(np.concatenate([silence(0.5), audio]), RATE):
            yield gateway_pb2.ConverseRequest(audio=pcm)

    with grpc.insecure_channel(stack.services["gateway"].target) as ch:
        events = list(gateway_pb2_grpc.GatewayServiceStub(ch).Converse(requests(), timeout=900))
    summaries = [e.summary for e in events if e.WhichOneof("event") == "summary" and not e.summary.cancelled]
    reasons = [gateway_pb2.EndOfTurnReason.Name(e.end_of_turn.reason).removeprefix("END_OF_TURN_REASON_").lower()
               for e in events if e.WhichOneof("event") == "end_of_turn"]
    hits = gateway_metric(stack, "talker_gateway_preemptive_generations_total", result="hit") - hits0
    misses = gateway_metric(stack, "talker_gateway_preemptive_generations_total", result="miss") - misses0
    # Every turn's transcript (a reply stopped by the next question still has its transcript).
    transcripts = [e.summary.transcript for e in events if e.WhichOneof("event") == "summary"]
    heard = [wer(q, t) for q, t in zip(questions, transcripts, strict=False)]
    return {"summaries": summaries, "reasons": reasons, "hits": hits, "misses": misses,
            "turns": len([e for e in events if e.WhichOneof("event") == "summary"]), "heard": heard}


def prompt_reuse(stack: Stack, turns: int) -> list[float]:
    """Time to first token of each text turn of one session."""
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(turns)]
    config = gateway_pb2.SessionConfig(max_reply_tokens=32)
    with grpc.insecure_channel(stack.services["gateway"].target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        out = []

        def requests():
            yield gateway_pb2.ConverseRequest(config=config)
            for q in questions:
                yield gateway_pb2.ConverseRequest(text=q)
                done.get(timeout=300)

        import queue

        done: queue.Queue = queue.Queue()
        for ev in stub.Converse(requests(), timeout=900):
            if ev.WhichOneof("event") == "summary":
                out.append(ev.summary.time_to_first_token_seconds)
                done.put(True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="how many of the question set")
    parser.add_argument("--hands-free-turns", type=int, default=8)
    parser.add_argument("--gap", type=float, default=4.0, help="silence after each hands-free question, s")
    parser.add_argument("--session-turns", type=int, default=10)
    parser.add_argument("--offset", type=int, default=800, help="port offset of the benchmark stack")
    parser.add_argument("--release", type=float, default=0.3,
                        help="push-to-talk: silence between the end of speech and the end of the stream, s")
    parser.add_argument("--ptt-rounds", type=int, default=2, help="push-to-talk: on/off rounds, alternated")
    parser.add_argument("--profiles", default="quality",
                        help="comma-separated LLM profiles for the hands-free turns, each in its own stack; "
                             "PROFILE+ASR_MODEL also sets the ASR model (fast+tiny.en)")
    parser.add_argument("--models-dir", default="", help="TALKER_LLM_MODELS_DIR where the profiles are installed")
    args = parser.parse_args()
    questions = list(QUESTIONS[:args.questions])

    profiles = args.profiles.split(",")
    free_by_profile = {}
    for profile in profiles:
        env = profile_env(profile, args.models_dir)
        stack = Stack(run_dir=OUT / "stack-voice", port_offset=args.offset, env=env)
        stack.stop()
        stack.start()
        try:
            stack.wait_serving(300)
            if profile == profiles[0]:
                piper = [wav_to_16k(stack.speak(q)) for q in questions]
                voices = {"piper": piper, **{f"espeak {r}": [espeak(q, r) for q in questions] for r in ESPEAK_RATES}}
            free_by_profile[profile] = hands_free(stack, piper[:args.hands_free_turns],
                                                  questions[:args.hands_free_turns], args.gap)
            if profile == profiles[0]:
                ttft = prompt_reuse(stack, args.session_turns)
        finally:
            stack.stop()
    free = free_by_profile[profiles[0]]
    model_rows = asr_models(voices, questions)
    ptt_rows = push_to_talk([trimmed(a) for a in piper[:args.hands_free_turns]], args.release, args.ptt_rounds)

    s = free["summaries"]
    ttff = [x.time_to_first_frame_seconds for x in s]
    wait = [x.end_of_turn_delay_seconds for x in s]
    tried = free["hits"] + free["misses"]
    hit_rate = free["hits"] / tried if tried else 0.0
    hf_rows = [[name, p50(v), pct(v, 95)] for name, v in [
        ("end-of-turn wait (end of speech → decision)", wait),
        ("transcript after the decision", [x.time_to_transcript_seconds - x.end_of_turn_delay_seconds for x in s]),
        ("time to transcript", [x.time_to_transcript_seconds for x in s]),
        ("time to first token", [x.time_to_first_token_seconds for x in s]),
        ("time to first audio", [x.time_to_first_audio_seconds for x in s]),
        ("time to first frame", ttff)]]
    voice_cols = [f"WER {v}" for v in voices]
    profile_rows = []
    for profile, run in free_by_profile.items():
        frames = [x.time_to_first_frame_seconds for x in run["summaries"]]
        waits = [x.end_of_turn_delay_seconds for x in run["summaries"]]
        tries = run["hits"] + run["misses"]
        profile_rows.append([profile, p50(frames), pct(frames, 95), p50(waits),
                             f"{run['hits']:.0f}/{tries:.0f}"])
    text = f"""## Voice loop (hands-free turns, ASR models)

ASR models on the spoken-question set ({len(questions)} questions read by Piper and by espeak-ng at
{' and '.join(map(str, ESPEAK_RATES))} wpm, made at run time), each model alone in its ASR service
(2 threads, int8) through `AsrService.Transcribe`; decode time is the model's time per question:

{table(["model", "WER", *voice_cols, "decode p50 s", "decode p95 s"], model_rows)}

Push-to-talk ASR: each of the first {args.hands_free_turns} Piper questions streamed in real time to
`AsrService.Transcribe`, then {args.release:g} s of silence and the end of the stream (the user lets go of
the button); seconds from the end of the stream to the transcript, with the decode at each pause while
the audio streams in on and off (`TALKER_ASR_EARLY_DECODE`; {args.ptt_rounds} rounds each, alternated):

{table(["ASR", "p50", "p95"], ptt_rows)}

Hands-free: one `Converse` session (turn detection by the server), {len(questions[:args.hands_free_turns])}
Piper questions streamed in real time, each followed by {args.gap:g} s of silence; seconds from the end of
the user's speech ({len(s)} answered turns of {free['turns']}; end-of-turn reasons:
{', '.join(f'{r} {free["reasons"].count(r)}' for r in sorted(set(free["reasons"])))}):

{table(["measure", "p50", "p95"], hf_rows)}

Per LLM profile (each in its own stack, the same questions; seconds):

{table(["profile", "first frame p50", "first frame p95", "end-of-turn wait p50", "preemptive hits"], profile_rows)}

Preemptive generation: {free['hits']:.0f} hits, {free['misses']:.0f} misses (hit rate {hit_rate:.0%}).
Transcripts heard exactly in {sum(1 for h in free['heard'] if h == 0)} of {len(free['heard'])} turns.

Prompt prefix reuse: time to first token (text turns, one session, history growing) at turn 1
{ttft[0]:.3f} s, turn {len(ttft)} {ttft[-1]:.3f} s (all turns: {', '.join(f'{t:.2f}' for t in ttft)}).
llama-cpp-python's `generate` keeps the previous call's KV cache and evaluates only the tokens after the
longest common prefix, so a session's next turn pays for its new messages, not the whole history; the
per-prefix state cache keeps that true when sessions interleave (`bench/answers.py` measures two).

Targets: hands-free first frame p50 ≤ 1.2 s ({'met' if p50(ttff) <= 1.2 else 'MISSED'}: {p50(ttff):.2f} s).
"""
    print(write_section("voice", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
