from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TurnEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TURN_END_REASON_UNSPECIFIED: _ClassVar[TurnEndReason]
    TURN_END_REASON_SEMANTIC: _ClassVar[TurnEndReason]
    TURN_END_REASON_SILENCE_CAP: _ClassVar[TurnEndReason]
    TURN_END_REASON_STREAM_END: _ClassVar[TurnEndReason]
TURN_END_REASON_UNSPECIFIED: TurnEndReason
TURN_END_REASON_SEMANTIC: TurnEndReason
TURN_END_REASON_SILENCE_CAP: TurnEndReason
TURN_END_REASON_STREAM_END: TurnEndReason

class TranscribeConfig(_message.Message):
    __slots__ = ("sample_rate", "language")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    language: str
    def __init__(self, sample_rate: _Optional[int] = ..., language: _Optional[str] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: TranscribeConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[TranscribeConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("text", "is_final", "audio_seconds", "processing_seconds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    is_final: bool
    audio_seconds: float
    processing_seconds: float
    def __init__(self, text: _Optional[str] = ..., is_final: bool = ..., audio_seconds: _Optional[float] = ..., processing_seconds: _Optional[float] = ...) -> None: ...

class ListenConfig(_message.Message):
    __slots__ = ("sample_rate", "language")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    language: str
    def __init__(self, sample_rate: _Optional[int] = ..., language: _Optional[str] = ...) -> None: ...

class ListenRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: ListenConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[ListenConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class ListenResponse(_message.Message):
    __slots__ = ("speech_started", "partial", "turn_end")
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TURN_END_FIELD_NUMBER: _ClassVar[int]
    speech_started: ListenSpeechStarted
    partial: ListenPartial
    turn_end: ListenTurnEnd
    def __init__(self, speech_started: _Optional[_Union[ListenSpeechStarted, _Mapping]] = ..., partial: _Optional[_Union[ListenPartial, _Mapping]] = ..., turn_end: _Optional[_Union[ListenTurnEnd, _Mapping]] = ...) -> None: ...

class ListenSpeechStarted(_message.Message):
    __slots__ = ("audio_offset_seconds",)
    AUDIO_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    audio_offset_seconds: float
    def __init__(self, audio_offset_seconds: _Optional[float] = ...) -> None: ...

class ListenPartial(_message.Message):
    __slots__ = ("text", "audio_offset_seconds", "at_pause")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AT_PAUSE_FIELD_NUMBER: _ClassVar[int]
    text: str
    audio_offset_seconds: float
    at_pause: bool
    def __init__(self, text: _Optional[str] = ..., audio_offset_seconds: _Optional[float] = ..., at_pause: bool = ...) -> None: ...

class ListenTurnEnd(_message.Message):
    __slots__ = ("reason", "text", "speech_start_offset_seconds", "speech_end_offset_seconds", "delay_seconds", "completion_probability", "audio_seconds", "processing_seconds", "transcript_wait_seconds")
    REASON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_START_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_END_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reason: TurnEndReason
    text: str
    speech_start_offset_seconds: float
    speech_end_offset_seconds: float
    delay_seconds: float
    completion_probability: float
    audio_seconds: float
    processing_seconds: float
    transcript_wait_seconds: float
    def __init__(self, reason: _Optional[_Union[TurnEndReason, str]] = ..., text: _Optional[str] = ..., speech_start_offset_seconds: _Optional[float] = ..., speech_end_offset_seconds: _Optional[float] = ..., delay_seconds: _Optional[float] = ..., completion_probability: _Optional[float] = ..., audio_seconds: _Optional[float] = ..., processing_seconds: _Optional[float] = ..., transcript_wait_seconds: _Optional[float] = ...) -> None: ...
