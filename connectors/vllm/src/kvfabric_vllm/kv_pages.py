"""vLLM's KV cache as kvfabric pages, and the host staging region the node copies to and from.

vLLM 0.33 hands register_kv_caches one logical [B, H, N, C] view per layer whose (layer, block) page is one
contiguous run of page_size_bytes in every layer- or block-outermost layout (LBNHC, LBHNC, BLNHC, BLHNC); a block
split into kernel blocks is `ratio` consecutive kernel pages. A kvfabric segment is one such layer page, so a
kvfabric page (one block) is the block's pages of every layer, in KV cache group order.

The staging region is layer-major: segment (layer) l of slot s at (l * slots + s) * segment_bytes. Moving blocks
is one gather (index_select) or scatter (index_copy_) per layer; on CUDA the copies run on the connector's own
stream into a region pinned with cudaHostRegister, so they overlap with compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import PageGeometry
from .errors import KvfabricError


def is_dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill one gap-free run of memory, in any dimension order."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def layer_pages(name: str, kv: torch.Tensor, num_blocks: int, segment_bytes: int) -> torch.Tensor:
    """A uint8 [num_blocks, segment_bytes] view of layer `name`'s pages; refuses layouts whose pages are not
    contiguous, naming the layer and what differs."""
    if kv.dim() < 2 or kv.stride(-1) != 1:
        raise KvfabricError(
            "CONFIG_INVALID", f"kv_caches[{name!r}]: expected a [B, H, N, C] view, got {tuple(kv.shape)}"
        )
    u8 = kv.view(torch.uint8)
    if u8.shape[0] % num_blocks != 0:
        raise KvfabricError(
            "CONFIG_INVALID", f"kv_caches[{name!r}]: {u8.shape[0]} blocks is not a multiple of num_blocks {num_blocks}"
        )
    ratio = u8.shape[0] // num_blocks
    kernel_page = u8[0]
    if not is_dense(kernel_page):
        raise KvfabricError(
            "CONFIG_INVALID",
            f"kv_caches[{name!r}]: a block's page is not contiguous (strides {tuple(kv.stride())}); use a layer- or "
            "block-outermost KV cache layout (VLLM_KV_CACHE_LAYOUT=LBNHC, LBHNC, BLNHC or BLHNC)",
        )
    if ratio > 1 and u8.stride(0) != kernel_page.numel():
        raise KvfabricError("CONFIG_INVALID", f"kv_caches[{name!r}]: kernel blocks of a block are not adjacent")
    page = kernel_page.numel() * ratio
    if page != segment_bytes:
        raise KvfabricError(
            "CONFIG_INVALID",
            f"kv_caches[{name!r}]: a block's page is {page} bytes, the KV cache spec says {segment_bytes}",
        )
    return u8.as_strided((num_blocks, page), (u8.stride(0) * ratio, 1))


class KvMover:
    """Copies blocks between vLLM's KV pages and the staging region, layer by layer."""

    def __init__(
        self,
        kv_caches: dict[str, torch.Tensor],
        geometry: PageGeometry,
        num_blocks: int,
        staging: memoryview | bytearray,
        slots: int,
    ):
        missing = [n for n in geometry.layer_names if n not in kv_caches]
        if missing:
            raise KvfabricError(
                "CONFIG_INVALID", f"kv_caches: no tensor for layers {missing[:4]} of the KV cache group"
            )
        self.names = geometry.layer_names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.pages = [layer_pages(n, kv_caches[n], num_blocks, geometry.segment_bytes) for n in self.names]
        self.device = self.pages[0].device
        self.slots = slots
        self.staging = torch.frombuffer(staging, dtype=torch.uint8).view(len(self.names), slots, geometry.segment_bytes)
        self.cuda = self.device.type == "cuda"
        self.stream = None
        self._pinned = False
        if self.cuda:
            self.stream = torch.cuda.Stream(device=self.device)
            err = torch.cuda.cudart().cudaHostRegister(self.staging.data_ptr(), self.staging.numel(), 0)
            if int(err) != 0:
                raise KvfabricError("INTERNAL", f"cudaHostRegister of the staging region failed: {err}")
            self._pinned = True

    def _ids(self, block_ids: Sequence[int]) -> torch.Tensor:
        ids = torch.tensor(list(block_ids), dtype=torch.long)
        return ids.to(self.device, non_blocking=True) if self.cuda else ids

    def gather(self, layer: int, block_ids: Sequence[int], slot: int) -> None:
        """staging[layer, slot : slot + n] = pages[layer][block_ids] (on the copy stream when on CUDA)."""
        dst = self.staging[layer, slot : slot + len(block_ids)]
        if not self.cuda:
            torch.index_select(self.pages[layer], 0, self._ids(block_ids), out=dst)
            return
        with torch.cuda.stream(self.stream):
            dst.copy_(self.pages[layer].index_select(0, self._ids(block_ids)), non_blocking=True)

    def scatter(self, layer: int, block_ids: Sequence[int], slot: int) -> None:
        """pages[layer][block_ids] = staging[layer, slot : slot + n]."""
        src = self.staging[layer, slot : slot + len(block_ids)]
        if not self.cuda:
            self.pages[layer].index_copy_(0, self._ids(block_ids), src)
            return
        with torch.cuda.stream(self.stream):
            self.pages[layer].index_copy_(0, self._ids(block_ids), src.to(self.device, non_blocking=True))

    def after_compute(self) -> None:
        """Orders the copy stream after what the compute stream has queued (the KV the forward wrote)."""
        if self.cuda:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))

    def record(self):
        """An event after the copies queued so far, or None off CUDA (copies there are done on return)."""
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def synchronize(self) -> None:
        if self.cuda:
            self.stream.synchronize()

    def close(self) -> None:
        if self._pinned:
            torch.cuda.cudart().cudaHostUnregister(self.staging.data_ptr())
            self._pinned = False
