"""What the scheduler-side connector tells the workers for one step."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorMetadata


@dataclass
class LoadSpec:
    """Load the lease's first len(block_ids) blocks into vLLM blocks block_ids (each TP rank once)."""

    req_id: str
    lease_id: str
    block_ids: list[int]


@dataclass
class SaveSpec:
    """Save vLLM blocks block_ids under vLLM's own block hashes."""

    req_id: str
    block_ids: list[int]
    hashes: list[bytes]


@dataclass
class KvfabricMetadata(KVConnectorMetadata):
    loads: list[LoadSpec] = field(default_factory=list)
    saves: list[SaveSpec] = field(default_factory=list)
