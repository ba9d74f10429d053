from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
