from talker.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterAvatarRequest(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    def __init__(self, image: _Optional[bytes] = ...) -> None: ...

class RegisterAvatarResponse(_message.Message):
    __slots__ = ("avatar_id", "width", "height", "landmarks", "cached")
    AVATAR_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    avatar_id: str
    width: int
    height: int
    landmarks: int
    cached: bool
    def __init__(self, avatar_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., landmarks: _Optional[int] = ..., cached: bool = ...) -> None: ...

class AnimateConfig(_message.Message):
    __slots__ = ("avatar_id", "avatar_image", "fps", "sample_rate", "format", "jpeg_quality", "clock_offset_seconds", "motion_seed")
    AVATAR_ID_FIELD_NUMBER: _ClassVar[int]
    AVATAR_IMAGE_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MOTION_SEED_FIELD_NUMBER: _ClassVar[int]
    avatar_id: str
    avatar_image: bytes
    fps: int
    sample_rate: int
    format: _common_pb2.FrameFormat
    jpeg_quality: int
    clock_offset_seconds: float
    motion_seed: int
    def __init__(self, avatar_id: _Optional[str] = ..., avatar_image: _Optional[bytes] = ..., fps: _Optional[int] = ..., sample_rate: _Optional[int] = ..., format: _Optional[_Union[_common_pb2.FrameFormat, str]] = ..., jpeg_quality: _Optional[int] = ..., clock_offset_seconds: _Optional[float] = ..., motion_seed: _Optional[int] = ...) -> None: ...

class IdleRequest(_message.Message):
    __slots__ = ("config", "start_seconds", "after_speech")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SPEECH_FIELD_NUMBER: _ClassVar[int]
    config: AnimateConfig
    start_seconds: float
    after_speech: bool
    def __init__(self, config: _Optional[_Union[AnimateConfig, _Mapping]] = ..., start_seconds: _Optional[float] = ..., after_speech: bool = ...) -> None: ...

class IdleResponse(_message.Message):
    __slots__ = ("frame",)
    FRAME_FIELD_NUMBER: _ClassVar[int]
    frame: _common_pb2.Frame
    def __init__(self, frame: _Optional[_Union[_common_pb2.Frame, _Mapping]] = ...) -> None: ...

class AudioSegment(_message.Message):
    __slots__ = ("pcm", "text", "phonemes")
    PCM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PHONEMES_FIELD_NUMBER: _ClassVar[int]
    pcm: bytes
    text: str
    phonemes: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhonemeTiming]
    def __init__(self, pcm: _Optional[bytes] = ..., text: _Optional[str] = ..., phonemes: _Optional[_Iterable[_Union[_common_pb2.PhonemeTiming, _Mapping]]] = ...) -> None: ...

class AnimateRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: AnimateConfig
    audio: AudioSegment
    def __init__(self, config: _Optional[_Union[AnimateConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioSegment, _Mapping]] = ...) -> None: ...

class AnimateResponse(_message.Message):
    __slots__ = ("frame",)
    FRAME_FIELD_NUMBER: _ClassVar[int]
    frame: _common_pb2.Frame
    def __init__(self, frame: _Optional[_Union[_common_pb2.Frame, _Mapping]] = ...) -> None: ...
