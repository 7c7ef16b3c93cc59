"""The connector's settings (kv_connector_extra_config) and what it derives from vLLM's config: the KV page
geometry kvfabric stores and the namespace that names it. Pure: no I/O, no gRPC."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from .errors import KvfabricError

DEFAULT_ENGINE_SOCKET = "/run/kvfabric/engine.sock"
NAMESPACE_MAX = 128
_NAMESPACE_BAD = re.compile(r"[^A-Za-z0-9._:/-]")


@dataclass(frozen=True)
class ConnectorConfig:
    engine_socket: str = DEFAULT_ENGINE_SOCKET
    # The node's region handover socket; default <engine_socket>.regions.
    region_socket: str | None = None
    # Explicit namespace; default derived by derive_namespace().
    namespace: str | None = None
    # Blocks the worker's host staging region holds: the most blocks one step saves or loads at once (more are
    # moved in rounds). Default: enough for the whole KV cache of a step's batch (max_num_batched_tokens).
    staging_blocks: int | None = None
    # Deadline of each call to the node.
    deadline_s: float = 10.0
    # After a call to the node failed, the scheduler answers "no external hits" for this long before trying again.
    retry_after_s: float = 5.0
    # Query only this node's pool (no SSD, no remote pulls).
    local_only: bool = False
    # Also save the blocks a request generates (decode), not only its prompt's: the next turn of a conversation,
    # whose prompt carries this answer, then hits them too.
    save_decode: bool = True
    # Where the node copies blocks from and to: "host", a staging region in shared memory the connector copies
    # vLLM's KV cache through; or "cuda_ipc", the KV cache on the GPU itself, opened by the node from its CUDA IPC
    # handles (the node needs a CUDA driver and the GPU).
    region: str = "host"


_FIELDS: dict[str, tuple[type, ...]] = {
    "engine_socket": (str,),
    "region_socket": (str,),
    "namespace": (str,),
    "staging_blocks": (int,),
    "deadline_s": (int, float),
    "retry_after_s": (int, float),
    "local_only": (bool,),
    "save_decode": (bool,),
    "region": (str,),
}
REGION_KINDS = ("host", "cuda_ipc")


def parse_extra_config(extra: dict[str, Any] | None) -> ConnectorConfig:
    """Validates kv_connector_extra_config; every problem is reported together, naming the key."""
    extra = dict(extra or {})
    problems = []
    values: dict[str, Any] = {}
    for key, value in extra.items():
        kinds = _FIELDS.get(key)
        if kinds is None:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(_FIELDS))})")
            continue
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            problems.append(f"{key}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
            continue
        values[key] = value
    if "staging_blocks" in values and not 1 <= values["staging_blocks"] <= 1 << 24:
        problems.append(f"staging_blocks: expected 1..{1 << 24}, got {values['staging_blocks']!r}")
    for key in ("deadline_s", "retry_after_s"):
        if key in values and not 0 < values[key] <= 3600:
            problems.append(f"{key}: expected seconds in (0, 3600], got {values[key]!r}")
    if "namespace" in values:
        try:
            check_namespace(values["namespace"])
        except KvfabricError as err:
            problems.append(err.message)
    if "region" in values and values["region"] not in REGION_KINDS:
        problems.append(f"region: expected one of {', '.join(REGION_KINDS)}, got {values['region']!r}")
    if "engine_socket" in values and not values["engine_socket"]:
        problems.append("engine_socket: expected a unix socket path, got ''")
    if problems:
        raise KvfabricError("CONFIG_INVALID", "kv_connector_extra_config: " + "; ".join(problems))
    return ConnectorConfig(**values)


def check_namespace(ns: str) -> str:
    if not 1 <= len(ns) <= NAMESPACE_MAX or _NAMESPACE_BAD.search(ns):
        raise KvfabricError(
            "INVALID_ARGUMENT", f"namespace: expected 1..{NAMESPACE_MAX} characters of [A-Za-z0-9._:/-], got {ns!r}"
        )
    return ns


@dataclass(frozen=True)
class PageGeometry:
    """What one kvfabric page of this engine holds: one segment per attention layer, each the layer's KV page
    for one block (vLLM's page_size_bytes: K and V of every head and token of the block), in layer_names order."""

    layer_names: tuple[str, ...]
    segment_bytes: int
    block_size: int
    replicated: bool  # MLA: every TP rank holds the same latent KV; stored once

    @property
    def page_bytes(self) -> int:
        return self.segment_bytes * len(self.layer_names)


def page_geometry(kv_cache_config: Any) -> PageGeometry:
    """From vLLM's KVCacheConfig: one KV cache group of (MLA or full) attention layers with one page size."""
    from vllm.v1.kv_cache_interface import AttentionSpec, MLAAttentionSpec

    groups = list(kv_cache_config.kv_cache_groups)
    if len(groups) != 1:
        raise KvfabricError(
            "CONFIG_INVALID",
            f"kv_cache_config: the kvfabric connector stores models with one KV cache group, got {len(groups)} "
            "(hybrid attention: sliding window, Mamba)",
        )
    spec = groups[0].kv_cache_spec
    if not isinstance(spec, AttentionSpec) or getattr(spec, "sliding_window", None):
        raise KvfabricError(
            "CONFIG_INVALID", f"kv_cache_config: expected full or MLA attention layers, got {type(spec).__name__}"
        )
    if spec.page_size_bytes != spec.unpadded_page_size_bytes:
        raise KvfabricError(
            "CONFIG_INVALID",
            f"kv_cache_config: padded KV pages ({spec.page_size_bytes} bytes for {spec.unpadded_page_size_bytes}) "
            "are not supported",
        )
    names = tuple(groups[0].layer_names)
    if not names:
        raise KvfabricError("CONFIG_INVALID", "kv_cache_config: the KV cache group has no layers")
    return PageGeometry(names, spec.page_size_bytes, spec.block_size, isinstance(spec, MLAAttentionSpec))


def derive_namespace(model: str, dtype: str, tp_size: int, geometry: PageGeometry) -> str:
    """`vllm/<model>/<dtype>/tp<N>[-mla]/b<block size>/<layers>x<segment bytes>`, characters outside the namespace
    alphabet turned into '-'. A local model path contributes its last component (the directory's name), so copies of
    one model in different places share a namespace. Longer than 128 characters:
    the model part is shortened and a digest of the full name appended."""
    parts = [p for p in model.rstrip("/").split("/") if p]
    if model.startswith(("/", ".")):
        parts = parts[-1:]
    name = _NAMESPACE_BAD.sub("-", "/".join(parts) or "model")
    tail = (
        f"/{_NAMESPACE_BAD.sub('-', dtype.removeprefix('torch.'))}/tp{tp_size}{'-mla' if geometry.replicated else ''}"
        f"/b{geometry.block_size}/{len(geometry.layer_names)}x{geometry.segment_bytes}"
    )
    full = f"vllm/{name}{tail}"
    if len(full) <= NAMESPACE_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    room = NAMESPACE_MAX - len("vllm/") - len(tail) - len(digest) - 1
    return f"vllm/{name[: max(room, 1)]}-{digest}{tail}"[:NAMESPACE_MAX]
