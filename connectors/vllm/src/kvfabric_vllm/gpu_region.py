"""vLLM's KV cache as GPU memory the node opens itself (region "cuda_ipc"): one CUDA IPC handle per storage the
layers live in (one per layer when vLLM allocates per layer, one for all when they share a tensor), laid back to
back into one region (proto CudaIpcRegion), and the geometry that finds block b's layer page in it. The node then copies between its pool and the KV cache directly, on a CUDA stream of its own: no
staging region, no copy on the engine's side."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .config import PageGeometry
from .engine_client import Geometry
from .errors import KvfabricError
from .kv_pages import layer_pages
from .proto.kvfabric.v1 import node_pb2


@dataclass(frozen=True)
class CudaIpcPart:
    handle: bytes  # the allocation's 64-byte cudaIpcMemHandle_t
    offset_bytes: int  # where the part starts inside that allocation
    size_bytes: int


@dataclass(frozen=True)
class CudaIpcRegion:
    """GPU memory of one device (its ordinal as the node sees it): the parts back to back."""

    device: int
    parts: tuple[CudaIpcPart, ...]

    @property
    def size(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    def region_spec(self, region_socket: str, timeout_s: float) -> node_pb2.RegionSpec:
        """The RegisterInstance region (nothing to hand over: the handles travel in the request)."""
        return node_pb2.RegionSpec(
            size_bytes=self.size,
            cuda_ipc=node_pb2.CudaIpcRegion(
                device=self.device,
                parts=[
                    node_pb2.CudaIpcPart(handle=p.handle, offset_bytes=p.offset_bytes, size_bytes=p.size_bytes)
                    for p in self.parts
                ],
            ),
        )


def node_device(index: int) -> int:
    """The device's ordinal without this process's CUDA_VISIBLE_DEVICES (the node sees every device)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    entry = visible[index].strip() if index < len(visible) else ""
    return int(entry) if entry.isdigit() else index


def kv_cache_region(
    kv_caches: dict[str, torch.Tensor], geometry: PageGeometry, num_blocks: int, device: int | None = None
) -> tuple[CudaIpcRegion, Geometry]:
    """The KV cache's layers as one region of IPC parts, one per layer storage, and where block b's page of layer l
    lies in it: segment_offsets[l] + b * stride. Refuses what does not fit that (layers on different devices or with
    different block strides), naming the layer."""
    parts: list[CudaIpcPart] = []
    offsets: list[int] = []
    starts: dict[int, int] = {}  # a storage's region offset, by its address: layers sharing one are one part
    stride = None
    dev = None
    at = 0
    for name in geometry.layer_names:
        if name not in kv_caches:
            raise KvfabricError("CONFIG_INVALID", f"kv_caches: no tensor for layer {name!r} of the KV cache group")
        pages = layer_pages(name, kv_caches[name], num_blocks, geometry.segment_bytes)
        if pages.device.type != "cuda":
            raise KvfabricError("CONFIG_INVALID", f"kv_caches[{name!r}]: region cuda_ipc needs the KV cache on CUDA")
        if dev is None:
            dev = pages.device
        elif pages.device != dev:
            raise KvfabricError("CONFIG_INVALID", f"kv_caches[{name!r}]: on {pages.device}, other layers on {dev}")
        if stride is None:
            stride = pages.stride(0)
        elif pages.stride(0) != stride:
            raise KvfabricError(
                "CONFIG_INVALID", f"kv_caches[{name!r}]: block stride {pages.stride(0)} bytes, other layers {stride}"
            )
        storage = pages.untyped_storage()
        if storage.data_ptr() not in starts:
            # (device, handle, storage size, storage offset in the allocation, ref counter, ...): torch's IPC export.
            shared = storage._share_cuda_()
            handle, size_bytes, offset_bytes = bytes(shared[1]), int(shared[2]), int(shared[3])
            parts.append(CudaIpcPart(handle, offset_bytes, size_bytes))
            starts[storage.data_ptr()] = at
            at += size_bytes
        offsets.append(starts[storage.data_ptr()] + pages.data_ptr() - storage.data_ptr())
    assert dev is not None and stride is not None
    ordinal = node_device(dev.index or 0) if device is None else device
    return CudaIpcRegion(ordinal, tuple(parts)), Geometry(offsets, geometry.segment_bytes, stride, num_blocks)
