from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
TRANSPORT_KIND_TCP: TransportKind
TRANSPORT_KIND_UNSPECIFIED: TransportKind
TRANSPORT_KIND_VERBS: TransportKind

class HashList(_message.Message):
    __slots__ = ["hash_len", "packed"]
    HASH_LEN_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    hash_len: int
    packed: bytes
    def __init__(self, packed: _Optional[bytes] = ..., hash_len: _Optional[int] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ["code", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TransportKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
