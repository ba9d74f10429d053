from talker.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TurnDetection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TURN_DETECTION_UNSPECIFIED: _ClassVar[TurnDetection]
    TURN_DETECTION_CLIENT: _ClassVar[TurnDetection]
    TURN_DETECTION_SERVER: _ClassVar[TurnDetection]

class EndOfTurnReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_OF_TURN_REASON_UNSPECIFIED: _ClassVar[EndOfTurnReason]
    END_OF_TURN_REASON_CLIENT: _ClassVar[EndOfTurnReason]
    END_OF_TURN_REASON_SEMANTIC: _ClassVar[EndOfTurnReason]
    END_OF_TURN_REASON_SILENCE_CAP: _ClassVar[EndOfTurnReason]
    END_OF_TURN_REASON_STREAM_END: _ClassVar[EndOfTurnReason]
TURN_DETECTION_UNSPECIFIED: TurnDetection
TURN_DETECTION_CLIENT: TurnDetection
TURN_DETECTION_SERVER: TurnDetection
END_OF_TURN_REASON_UNSPECIFIED: EndOfTurnReason
END_OF_TURN_REASON_CLIENT: EndOfTurnReason
END_OF_TURN_REASON_SEMANTIC: EndOfTurnReason
END_OF_TURN_REASON_SILENCE_CAP: EndOfTurnReason
END_OF_TURN_REASON_STREAM_END: EndOfTurnReason

class SessionConfig(_message.Message):
    __slots__ = ("avatar_id", "avatar_image", "voice", "system_prompt", "fps", "frame_format", "max_reply_tokens", "turn_detection", "input_sample_rate", "idle_video")
    AVATAR_ID_FIELD_NUMBER: _ClassVar[int]
    AVATAR_IMAGE_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TURN_DETECTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    IDLE_VIDEO_FIELD_NUMBER: _ClassVar[int]
    avatar_id: str
    avatar_image: bytes
    voice: str
    system_prompt: str
    fps: int
    frame_format: _common_pb2.FrameFormat
    max_reply_tokens: int
    turn_detection: TurnDetection
    input_sample_rate: int
    idle_video: bool
    def __init__(self, avatar_id: _Optional[str] = ..., avatar_image: _Optional[bytes] = ..., voice: _Optional[str] = ..., system_prompt: _Optional[str] = ..., fps: _Optional[int] = ..., frame_format: _Optional[_Union[_common_pb2.FrameFormat, str]] = ..., max_reply_tokens: _Optional[int] = ..., turn_detection: _Optional[_Union[TurnDetection, str]] = ..., input_sample_rate: _Optional[int] = ..., idle_video: bool = ...) -> None: ...

class EndOfTurn(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Cancel(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("config", "text", "audio", "end_of_turn", "cancel")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    config: SessionConfig
    text: str
    audio: bytes
    end_of_turn: EndOfTurn
    cancel: Cancel
    def __init__(self, config: _Optional[_Union[SessionConfig, _Mapping]] = ..., text: _Optional[str] = ..., audio: _Optional[bytes] = ..., end_of_turn: _Optional[_Union[EndOfTurn, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("config", "text", "wav")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WAV_FIELD_NUMBER: _ClassVar[int]
    config: SessionConfig
    text: str
    wav: bytes
    def __init__(self, config: _Optional[_Union[SessionConfig, _Mapping]] = ..., text: _Optional[str] = ..., wav: _Optional[bytes] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class PartialTranscript(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("audio_offset_seconds", "barge_in")
    AUDIO_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BARGE_IN_FIELD_NUMBER: _ClassVar[int]
    audio_offset_seconds: float
    barge_in: bool
    def __init__(self, audio_offset_seconds: _Optional[float] = ..., barge_in: bool = ...) -> None: ...

class EndOfTurnDetected(_message.Message):
    __slots__ = ("reason", "speech_end_offset_seconds", "delay_seconds", "completion_probability")
    REASON_FIELD_NUMBER: _ClassVar[int]
    SPEECH_END_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    reason: EndOfTurnReason
    speech_end_offset_seconds: float
    delay_seconds: float
    completion_probability: float
    def __init__(self, reason: _Optional[_Union[EndOfTurnReason, str]] = ..., speech_end_offset_seconds: _Optional[float] = ..., delay_seconds: _Optional[float] = ..., completion_probability: _Optional[float] = ...) -> None: ...

class ReplyText(_message.Message):
    __slots__ = ("delta",)
    DELTA_FIELD_NUMBER: _ClassVar[int]
    delta: str
    def __init__(self, delta: _Optional[str] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "first_output_seconds", "busy_seconds", "calls", "first_call_seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FIRST_OUTPUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUSY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    first_output_seconds: float
    busy_seconds: float
    calls: int
    first_call_seconds: float
    def __init__(self, stage: _Optional[str] = ..., first_output_seconds: _Optional[float] = ..., busy_seconds: _Optional[float] = ..., calls: _Optional[int] = ..., first_call_seconds: _Optional[float] = ...) -> None: ...

class TurnSummary(_message.Message):
    __slots__ = ("transcript", "reply", "time_to_transcript_seconds", "time_to_first_token_seconds", "time_to_first_audio_seconds", "time_to_first_frame_seconds", "turn_seconds", "stages", "audio_seconds", "frames", "fps", "cancelled", "end_of_turn_delay_seconds")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_TRANSCRIPT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_FRAME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TURN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    reply: str
    time_to_transcript_seconds: float
    time_to_first_token_seconds: float
    time_to_first_audio_seconds: float
    time_to_first_frame_seconds: float
    turn_seconds: float
    stages: _containers.RepeatedCompositeFieldContainer[StageTiming]
    audio_seconds: float
    frames: int
    fps: int
    cancelled: bool
    end_of_turn_delay_seconds: float
    def __init__(self, transcript: _Optional[str] = ..., reply: _Optional[str] = ..., time_to_transcript_seconds: _Optional[float] = ..., time_to_first_token_seconds: _Optional[float] = ..., time_to_first_audio_seconds: _Optional[float] = ..., time_to_first_frame_seconds: _Optional[float] = ..., turn_seconds: _Optional[float] = ..., stages: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., audio_seconds: _Optional[float] = ..., frames: _Optional[int] = ..., fps: _Optional[int] = ..., cancelled: bool = ..., end_of_turn_delay_seconds: _Optional[float] = ...) -> None: ...

class TurnError(_message.Message):
    __slots__ = ("stage", "code", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    code: _common_pb2.ErrorCode
    message: str
    def __init__(self, stage: _Optional[str] = ..., code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ConverseResponse(_message.Message):
    __slots__ = ("turn", "transcript", "reply_text", "audio", "frame", "summary", "error", "speech_started", "partial_transcript", "end_of_turn", "idle_frame")
    TURN_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    END_OF_TURN_FIELD_NUMBER: _ClassVar[int]
    IDLE_FRAME_FIELD_NUMBER: _ClassVar[int]
    turn: int
    transcript: Transcript
    reply_text: ReplyText
    audio: _common_pb2.AudioChunk
    frame: _common_pb2.Frame
    summary: TurnSummary
    error: TurnError
    speech_started: SpeechStarted
    partial_transcript: PartialTranscript
    end_of_turn: EndOfTurnDetected
    idle_frame: _common_pb2.Frame
    def __init__(self, turn: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., reply_text: _Optional[_Union[ReplyText, _Mapping]] = ..., audio: _Optional[_Union[_common_pb2.AudioChunk, _Mapping]] = ..., frame: _Optional[_Union[_common_pb2.Frame, _Mapping]] = ..., summary: _Optional[_Union[TurnSummary, _Mapping]] = ..., error: _Optional[_Union[TurnError, _Mapping]] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., partial_transcript: _Optional[_Union[PartialTranscript, _Mapping]] = ..., end_of_turn: _Optional[_Union[EndOfTurnDetected, _Mapping]] = ..., idle_frame: _Optional[_Union[_common_pb2.Frame, _Mapping]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("turn", "transcript", "reply_text", "audio", "frame", "summary", "error")
    TURN_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    turn: int
    transcript: Transcript
    reply_text: ReplyText
    audio: _common_pb2.AudioChunk
    frame: _common_pb2.Frame
    summary: TurnSummary
    error: TurnError
    def __init__(self, turn: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., reply_text: _Optional[_Union[ReplyText, _Mapping]] = ..., audio: _Optional[_Union[_common_pb2.AudioChunk, _Mapping]] = ..., frame: _Optional[_Union[_common_pb2.Frame, _Mapping]] = ..., summary: _Optional[_Union[TurnSummary, _Mapping]] = ..., error: _Optional[_Union[TurnError, _Mapping]] = ...) -> None: ...
