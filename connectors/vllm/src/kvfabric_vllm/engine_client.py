"""A client of one kvfabric-node's Engine API (proto/kvfabric/v1/node.proto) over its unix socket, with grpcio.

Mirrors the TypeScript SDK (packages/client engine-client.ts): hand the region's descriptor over, RegisterInstance
with its token and geometry, present the answered instance key on every later call (metadata
kvfabric-instance-key), hold a Session stream so the node drops the instance and its leases when this process
dies, then Save, Query, Load and Release.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from .errors import KvfabricError, from_rpc_error
from .proto.kvfabric.v1 import common_pb2, node_pb2, node_pb2_grpc
from .region import SealedRegion

if TYPE_CHECKING:
    from .gpu_region import CudaIpcRegion

INSTANCE_KEY_METADATA = "kvfabric-instance-key"
# The node's engine API limits (packages/common engine-limits.ts): 2^18 blocks of 64-byte hashes per call.
MAX_CALL_BLOCKS = 1 << 18
MAX_MESSAGE_BYTES = MAX_CALL_BLOCKS * (64 + 4) + 128 * 1024
SESSION_PING_S = 10.0

QUERY_READY = node_pb2.QUERY_STATE_READY
QUERY_LOADING = node_pb2.QUERY_STATE_LOADING
SAVE_OUTCOMES = {0: "stored", 1: "present", 2: "no_space", 3: "failed"}


@dataclass(frozen=True)
class Geometry:
    """Where segment s of block b lies in a region: segment_offsets[s] + b * block_stride_bytes."""

    segment_offsets: Sequence[int]
    segment_bytes: int
    block_stride_bytes: int
    num_blocks: int

    @property
    def size_bytes(self) -> int:
        return max(self.segment_offsets) + self.segment_bytes + (self.num_blocks - 1) * self.block_stride_bytes


def layer_major(segments: int, segment_bytes: int, num_blocks: int) -> Geometry:
    """Each segment one contiguous run over all blocks: segment s of block b at (s * num_blocks + b) * segment_bytes."""
    return Geometry([s * segment_bytes * num_blocks for s in range(segments)], segment_bytes, segment_bytes, num_blocks)


@dataclass
class QueryAnswer:
    state: int
    hits: int = 0
    lease_id: str = ""
    breakdown: dict = field(default_factory=dict)

    @property
    def loading(self) -> bool:
        return self.state == QUERY_LOADING


def pack_u32(values: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def hash_list(hashes: Sequence[bytes]) -> common_pb2.HashList:
    if not hashes:
        return common_pb2.HashList(packed=b"", hash_len=0)
    n = len(hashes[0])
    for i, h in enumerate(hashes):
        if len(h) != n:
            raise KvfabricError("INVALID_ARGUMENT", f"hashes[{i}]: expected {n} bytes like hashes[0], got {len(h)}")
    return common_pb2.HashList(packed=b"".join(hashes), hash_len=n)


class EngineClient:
    """One registered instance on one node. Not thread-safe for registration; calls may come from any thread."""

    def __init__(self, engine_socket: str, deadline_s: float = 10.0, region_socket: str | None = None):
        self.engine_socket = engine_socket
        self.region_socket = region_socket or engine_socket + ".regions"
        self.deadline_s = deadline_s
        self.channel = grpc.insecure_channel(
            f"unix:{engine_socket}",
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 10_000),
                ("grpc.keepalive_timeout_ms", 5_000),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2_000),
            ],
        )
        self.rpc = node_pb2_grpc.EngineStub(self.channel)
        self.instance_id = ""
        self.instance_key = ""
        self.node_id = ""
        self.page_bytes = 0
        self.shards = 0
        self._closed = threading.Event()
        self._session_open = threading.Event()
        self._session_thread: threading.Thread | None = None
        self.session_error: KvfabricError | None = None

    def _metadata(self) -> tuple:
        return ((INSTANCE_KEY_METADATA, self.instance_key),) if self.instance_key else ()

    def _call(self, method: str, request, what: str, timeout_s: float | None = None):
        try:
            return getattr(self.rpc, method)(request, timeout=timeout_s or self.deadline_s, metadata=self._metadata())
        except grpc.RpcError as err:
            raise from_rpc_error(err, what) from err

    def register(
        self,
        *,
        instance_id: str,
        engine_id: str,
        namespace: str,
        region: SealedRegion | CudaIpcRegion,
        geometry: Geometry,
        tp_size: int = 1,
        tp_rank: int = 0,
        world_size: int = 0,
        replicated: bool = False,
    ) -> None:
        """Registers the region (host memory: handed over first; GPU memory: its IPC handles) and opens the Session
        stream."""
        spec = region.region_spec(self.region_socket, self.deadline_s)
        res = self._call(
            "RegisterInstance",
            node_pb2.RegisterInstanceRequest(
                instance_id=instance_id,
                engine_id=engine_id,
                namespace=namespace,
                tp_size=tp_size,
                tp_rank=tp_rank,
                world_size=world_size,
                replicated=replicated,
                geometry=node_pb2.Geometry(
                    segment_offsets=list(geometry.segment_offsets),
                    segment_bytes=geometry.segment_bytes,
                    block_stride_bytes=geometry.block_stride_bytes,
                    num_blocks=geometry.num_blocks,
                ),
                region=spec,
            ),
            "RegisterInstance",
        )
        self.instance_id = instance_id
        self.instance_key = res.instance_key
        self.node_id = res.node_id
        self.page_bytes = res.page_bytes
        self.shards = res.shards
        self._open_session()

    def _session_messages(self) -> Iterator[node_pb2.SessionMessage]:
        yield node_pb2.SessionMessage(instance_id=self.instance_id)
        while not self._closed.wait(SESSION_PING_S):
            yield node_pb2.SessionMessage(instance_id="")

    def _open_session(self) -> None:
        stream = self.rpc.Session(self._session_messages(), metadata=self._metadata())

        def consume() -> None:
            try:
                for _ in stream:
                    self._session_open.set()
                if not self._closed.is_set():
                    self.session_error = KvfabricError("SESSION_UNKNOWN", "session ended by the node")
            except grpc.RpcError as err:
                if not self._closed.is_set():
                    self.session_error = from_rpc_error(err, "Session")
            finally:
                self._session_open.set()

        self._session_stream = stream
        self._session_thread = threading.Thread(target=consume, name="kvfabric-session", daemon=True)
        self._session_thread.start()
        if not self._session_open.wait(self.deadline_s) or self.session_error is not None:
            raise self.session_error or KvfabricError("DEADLINE_EXCEEDED", "Session: no first event from the node")

    def save(self, block_ids: Sequence[int], hashes: Sequence[bytes]) -> tuple[bytes, int, int]:
        """(outcomes, stored, sealed): one SaveOutcome byte per block."""
        res = self._call(
            "Save",
            node_pb2.SaveRequest(instance_id=self.instance_id, block_ids=pack_u32(block_ids), hashes=hash_list(hashes)),
            "Save",
        )
        return res.outcomes, res.stored, res.sealed

    def query(
        self, request_id: str, hashes: Sequence[bytes], *, local_only: bool = False, wait_ms: int = 0
    ) -> QueryAnswer:
        res = self._call(
            "Query",
            node_pb2.QueryRequest(
                instance_id=self.instance_id,
                request_id=request_id,
                hashes=hash_list(hashes),
                local_only=local_only,
                wait_ms=wait_ms,
            ),
            "Query",
        )
        b = res.breakdown
        return QueryAnswer(res.state, res.hits, res.lease_id, {"local": b.local, "ssd": b.ssd, "remote": b.remote})

    def load(self, lease_id: str, block_ids: Sequence[int]) -> tuple[int, int]:
        """(blocks loaded, bytes)."""
        res = self._call(
            "Load",
            node_pb2.LoadRequest(instance_id=self.instance_id, lease_id=lease_id, block_ids=pack_u32(block_ids)),
            "Load",
        )
        return res.loaded, res.bytes

    def release(self, lease_id: str) -> None:
        self._call("Release", node_pb2.ReleaseRequest(instance_id=self.instance_id, lease_id=lease_id), "Release")

    def status(self) -> node_pb2.StatusResponse:
        return self._call("Status", node_pb2.StatusRequest(), "Status")

    def close(self) -> None:
        """Unregisters (best effort), ends the session, closes the channel. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.instance_id:
            try:
                self._call(
                    "UnregisterInstance",
                    node_pb2.UnregisterInstanceRequest(instance_id=self.instance_id),
                    "Unregister",
                    2.0,
                )
            except KvfabricError:
                pass  # the session's end drops it anyway
        stream = getattr(self, "_session_stream", None)
        if stream is not None:
            stream.cancel()
        self.channel.close()
