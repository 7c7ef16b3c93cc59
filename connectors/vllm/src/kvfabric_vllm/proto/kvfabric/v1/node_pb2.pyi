from kvfabric_vllm.proto.kvfabric.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
QUERY_STATE_LOADING: QueryState
QUERY_STATE_READY: QueryState
QUERY_STATE_UNSPECIFIED: QueryState
SAVE_OUTCOME_FAILED: SaveOutcome
SAVE_OUTCOME_NO_SPACE: SaveOutcome
SAVE_OUTCOME_PRESENT: SaveOutcome
SAVE_OUTCOME_STORED: SaveOutcome

class AttachRingRequest(_message.Message):
    __slots__ = ["instance_id", "ring"]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    RING_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    ring: RegionSpec
    def __init__(self, instance_id: _Optional[str] = ..., ring: _Optional[_Union[RegionSpec, _Mapping]] = ...) -> None: ...

class AttachRingResponse(_message.Message):
    __slots__ = ["entries", "slot_bytes"]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SLOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    entries: int
    slot_bytes: int
    def __init__(self, entries: _Optional[int] = ..., slot_bytes: _Optional[int] = ...) -> None: ...

class CudaIpcPart(_message.Message):
    __slots__ = ["handle", "offset_bytes", "size_bytes"]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    handle: bytes
    offset_bytes: int
    size_bytes: int
    def __init__(self, handle: _Optional[bytes] = ..., offset_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class CudaIpcRegion(_message.Message):
    __slots__ = ["device", "parts"]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    device: int
    parts: _containers.RepeatedCompositeFieldContainer[CudaIpcPart]
    def __init__(self, device: _Optional[int] = ..., parts: _Optional[_Iterable[_Union[CudaIpcPart, _Mapping]]] = ...) -> None: ...

class DataPlaneError(_message.Message):
    __slots__ = ["code", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DataPlaneRequest(_message.Message):
    __slots__ = ["id", "load", "query", "release", "save"]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    SAVE_FIELD_NUMBER: _ClassVar[int]
    id: int
    load: LoadRequest
    query: QueryRequest
    release: ReleaseRequest
    save: SaveRequest
    def __init__(self, id: _Optional[int] = ..., save: _Optional[_Union[SaveRequest, _Mapping]] = ..., query: _Optional[_Union[QueryRequest, _Mapping]] = ..., load: _Optional[_Union[LoadRequest, _Mapping]] = ..., release: _Optional[_Union[ReleaseRequest, _Mapping]] = ...) -> None: ...

class DataPlaneResponse(_message.Message):
    __slots__ = ["error", "id", "load", "query", "release", "save"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    SAVE_FIELD_NUMBER: _ClassVar[int]
    error: DataPlaneError
    id: int
    load: LoadResponse
    query: QueryResponse
    release: ReleaseResponse
    save: SaveResponse
    def __init__(self, id: _Optional[int] = ..., save: _Optional[_Union[SaveResponse, _Mapping]] = ..., query: _Optional[_Union[QueryResponse, _Mapping]] = ..., load: _Optional[_Union[LoadResponse, _Mapping]] = ..., release: _Optional[_Union[ReleaseResponse, _Mapping]] = ..., error: _Optional[_Union[DataPlaneError, _Mapping]] = ...) -> None: ...

class Geometry(_message.Message):
    __slots__ = ["block_stride_bytes", "num_blocks", "segment_bytes", "segment_offsets"]
    BLOCK_STRIDE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    block_stride_bytes: int
    num_blocks: int
    segment_bytes: int
    segment_offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, segment_offsets: _Optional[_Iterable[int]] = ..., segment_bytes: _Optional[int] = ..., block_stride_bytes: _Optional[int] = ..., num_blocks: _Optional[int] = ...) -> None: ...

class HitBreakdown(_message.Message):
    __slots__ = ["local", "remote", "ssd"]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    SSD_FIELD_NUMBER: _ClassVar[int]
    local: int
    remote: int
    ssd: int
    def __init__(self, local: _Optional[int] = ..., ssd: _Optional[int] = ..., remote: _Optional[int] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ["block_ids", "instance_id", "lease_id"]
    BLOCK_IDS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    block_ids: bytes
    instance_id: str
    lease_id: str
    def __init__(self, instance_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., block_ids: _Optional[bytes] = ...) -> None: ...

class LoadResponse(_message.Message):
    __slots__ = ["bytes", "loaded"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    loaded: int
    def __init__(self, loaded: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ["hashes", "instance_id", "local_only", "request_id", "wait_ms"]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    hashes: _common_pb2.HashList
    instance_id: str
    local_only: bool
    request_id: str
    wait_ms: int
    def __init__(self, instance_id: _Optional[str] = ..., request_id: _Optional[str] = ..., hashes: _Optional[_Union[_common_pb2.HashList, _Mapping]] = ..., local_only: bool = ..., wait_ms: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ["breakdown", "hits", "lease_expires_at_ms", "lease_id", "state"]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    breakdown: HitBreakdown
    hits: int
    lease_expires_at_ms: int
    lease_id: str
    state: QueryState
    def __init__(self, state: _Optional[_Union[QueryState, str]] = ..., hits: _Optional[int] = ..., lease_id: _Optional[str] = ..., lease_expires_at_ms: _Optional[int] = ..., breakdown: _Optional[_Union[HitBreakdown, _Mapping]] = ...) -> None: ...

class RegionSpec(_message.Message):
    __slots__ = ["cuda_ipc", "size_bytes", "token"]
    CUDA_IPC_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    cuda_ipc: CudaIpcRegion
    size_bytes: int
    token: str
    def __init__(self, size_bytes: _Optional[int] = ..., token: _Optional[str] = ..., cuda_ipc: _Optional[_Union[CudaIpcRegion, _Mapping]] = ...) -> None: ...

class RegisterInstanceRequest(_message.Message):
    __slots__ = ["engine_id", "geometry", "instance_id", "namespace", "region", "replicated", "tp_rank", "tp_size", "world_size"]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    REPLICATED_FIELD_NUMBER: _ClassVar[int]
    TP_RANK_FIELD_NUMBER: _ClassVar[int]
    TP_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    geometry: Geometry
    instance_id: str
    namespace: str
    region: RegionSpec
    replicated: bool
    tp_rank: int
    tp_size: int
    world_size: int
    def __init__(self, instance_id: _Optional[str] = ..., namespace: _Optional[str] = ..., tp_size: _Optional[int] = ..., tp_rank: _Optional[int] = ..., world_size: _Optional[int] = ..., replicated: bool = ..., geometry: _Optional[_Union[Geometry, _Mapping]] = ..., region: _Optional[_Union[RegionSpec, _Mapping]] = ..., engine_id: _Optional[str] = ...) -> None: ...

class RegisterInstanceResponse(_message.Message):
    __slots__ = ["instance_key", "node_id", "page_bytes", "shards"]
    INSTANCE_KEY_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    instance_key: str
    node_id: str
    page_bytes: int
    shards: int
    def __init__(self, node_id: _Optional[str] = ..., page_bytes: _Optional[int] = ..., shards: _Optional[int] = ..., instance_key: _Optional[str] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ["instance_id", "lease_id"]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    lease_id: str
    def __init__(self, instance_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class SaveRequest(_message.Message):
    __slots__ = ["block_ids", "hashes", "instance_id"]
    BLOCK_IDS_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    block_ids: bytes
    hashes: _common_pb2.HashList
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ..., block_ids: _Optional[bytes] = ..., hashes: _Optional[_Union[_common_pb2.HashList, _Mapping]] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ["outcomes", "sealed", "stored"]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    outcomes: bytes
    sealed: int
    stored: int
    def __init__(self, outcomes: _Optional[bytes] = ..., stored: _Optional[int] = ..., sealed: _Optional[int] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ["node_id", "server_time_ms"]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    server_time_ms: int
    def __init__(self, node_id: _Optional[str] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ["instance_id"]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ["addr", "blocks", "instances", "metaserver_connected", "metaserver_epoch", "node_id", "pool_capacity_bytes", "pool_used_bytes", "transport"]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    METASERVER_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    METASERVER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    POOL_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    addr: str
    blocks: int
    instances: int
    metaserver_connected: bool
    metaserver_epoch: int
    node_id: str
    pool_capacity_bytes: int
    pool_used_bytes: int
    transport: _common_pb2.TransportKind
    def __init__(self, node_id: _Optional[str] = ..., addr: _Optional[str] = ..., transport: _Optional[_Union[_common_pb2.TransportKind, str]] = ..., pool_capacity_bytes: _Optional[int] = ..., pool_used_bytes: _Optional[int] = ..., blocks: _Optional[int] = ..., instances: _Optional[int] = ..., metaserver_epoch: _Optional[int] = ..., metaserver_connected: bool = ...) -> None: ...

class UnregisterInstanceRequest(_message.Message):
    __slots__ = ["instance_id"]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class UnregisterInstanceResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class SaveOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class QueryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
