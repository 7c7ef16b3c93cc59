"""The worker side: registers this TP rank's staging region with the node, loads leased blocks into vLLM's KV
cache before the forward (wait_for_layer_load waits per layer), and saves the step's finished prompt blocks after
it. A node that fails a load reports the blocks to vLLM (get_block_ids_with_load_errors), which recomputes them;
a failed save is logged and skipped. Neither is ever an error to the request."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .config import ConnectorConfig, PageGeometry
from .engine_client import SAVE_OUTCOMES, EngineClient, layer_major
from .errors import KvfabricError
from .gpu_region import kv_cache_region
from .kv_pages import KvMover
from .metadata import KvfabricMetadata
from .region import SealedRegion

log = logging.getLogger("kvfabric_vllm")


class WorkerSide:
    def __init__(
        self,
        cfg: ConnectorConfig,
        geometry: PageGeometry,
        namespace: str,
        engine_id: str,
        tp_size: int,
        tp_rank: int,
        num_blocks: int,
        slots: int,
    ):
        self.cfg = cfg
        self.geometry = geometry
        self.namespace = namespace
        self.engine_id = engine_id
        self.tp_size = tp_size
        self.tp_rank = tp_rank
        self.num_blocks = num_blocks
        self.slots = slots
        self.client: EngineClient | None = None
        self.region: SealedRegion | None = None
        self.mover: KvMover | None = None
        self.device: torch.device | None = None
        self.load_errors: set[int] = set()
        self.layer_events: dict[int, Any] = {}
        self.saved_layers: set[int] = set()
        self.stats = {"loaded_blocks": 0, "saved_blocks": 0, "stored_blocks": 0, "load_failures": 0, "save_failures": 0}

    @property
    def saves_here(self) -> bool:
        """MLA (replicated) KV is stored once, by rank 0; every rank loads."""
        return not self.geometry.replicated or self.tp_rank == 0

    @property
    def gpu_direct(self) -> bool:
        """Region "cuda_ipc": the node copies to and from the KV cache on the GPU itself (no staging)."""
        return self.cfg.region == "cuda_ipc"

    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        g = self.geometry
        if self.gpu_direct:
            self.device = next(iter(kv_caches.values())).device
            region, geometry = kv_cache_region(kv_caches, g, self.num_blocks)
            what = (
                f"its KV cache's {self.num_blocks} blocks on GPU {region.device} (CUDA IPC, {len(region.parts)} parts)"
            )
        else:
            self.region = SealedRegion(
                f"kvfabric-{self.engine_id}-tp{self.tp_rank}", len(g.layer_names) * self.slots * g.segment_bytes
            )
            self.mover = KvMover(kv_caches, g, self.num_blocks, self.region.map, self.slots)
            region, geometry = self.region, layer_major(len(g.layer_names), g.segment_bytes, self.slots)
            what = f"{self.slots} staging blocks"
        client = EngineClient(self.cfg.engine_socket, self.cfg.deadline_s, self.cfg.region_socket)
        try:
            client.register(
                instance_id=f"{self.engine_id}-tp{self.tp_rank}",
                engine_id=self.engine_id,
                namespace=self.namespace,
                region=region,
                geometry=geometry,
                tp_size=self.tp_size,
                tp_rank=self.tp_rank,
                replicated=g.replicated,
            )
        except KvfabricError as err:
            client.close()
            log.warning(
                "kvfabric node %s unavailable: this worker neither saves nor loads: %s", self.cfg.engine_socket, err
            )
            return
        self.client = client
        log.info(
            "kvfabric: rank %d registered %s in namespace %s on node %s",
            self.tp_rank,
            what,
            self.namespace,
            client.node_id,
        )

    def _settle_gpu(self) -> None:
        """The node's CUDA stream is another process's: let what vLLM queued on the GPU finish before it copies."""
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def _load_direct(self, meta: KvfabricMetadata) -> None:
        """Region cuda_ipc: the node writes the leased blocks into vLLM's blocks; done when Load answers."""
        self._settle_gpu()
        for spec in meta.loads:
            ids = spec.block_ids
            if self.client is None:
                self._failed_load(ids, "no node")
                continue
            try:
                loaded, _ = self.client.load(spec.lease_id, ids)
            except KvfabricError as err:
                self._failed_load(ids, str(err))
                continue
            if loaded < len(ids):
                self._failed_load(ids[loaded:], f"the node loaded {loaded} of {len(ids)} blocks")
            self.stats["loaded_blocks"] += loaded

    def _save_direct(self, ids: list[int], hashes: list[bytes]) -> None:
        """Region cuda_ipc: the node reads the blocks from vLLM's KV cache once the forward has written them."""
        self._settle_gpu()
        assert self.client is not None
        try:
            outcomes, stored, _ = self.client.save(ids, hashes)
        except KvfabricError as err:
            self.stats["save_failures"] += 1
            log.warning("kvfabric: save of %d blocks failed, skipped: %s", len(ids), err)
            return
        self._saved(outcomes, stored, len(ids))

    def _saved(self, outcomes: bytes, stored: int, count: int) -> None:
        self.stats["saved_blocks"] += count
        self.stats["stored_blocks"] += stored
        bad = [SAVE_OUTCOMES.get(o, str(o)) for o in outcomes if o >= 2]
        if bad:
            log.warning("kvfabric: %d of %d blocks not saved (%s)", len(bad), count, ", ".join(sorted(set(bad))))

    # ---- loads ----

    def start_load_kv(self, meta: KvfabricMetadata) -> None:
        self.layer_events = {}
        if not meta.loads:
            return
        if self.gpu_direct:
            self._load_direct(meta)
            return
        mover = self.mover
        slot = 0
        for spec in meta.loads:
            ids = spec.block_ids
            if self.client is None or mover is None or len(ids) > self.slots:
                self._failed_load(
                    ids, "no node" if self.client is None else f"{len(ids)} blocks exceed the staging region"
                )
                continue
            if slot + len(ids) > self.slots:
                mover.synchronize()  # the previous loads' copies must leave the slots before the node reuses them
                slot = 0
            try:
                loaded, _ = self.client.load(spec.lease_id, list(range(slot, slot + len(ids))))
            except KvfabricError as err:
                self._failed_load(ids, str(err))
                continue
            if loaded < len(ids):
                self._failed_load(ids[loaded:], f"the node loaded {loaded} of {len(ids)} blocks")
            for layer in range(len(self.geometry.layer_names)):
                mover.scatter(layer, ids[:loaded], slot)
            self.stats["loaded_blocks"] += loaded
            slot += len(ids)
        for layer in range(len(self.geometry.layer_names)):
            self.layer_events[layer] = mover.record() if mover is not None else None

    def _failed_load(self, block_ids: list[int], why: str) -> None:
        log.warning("kvfabric: load of %d blocks failed, vLLM recomputes them: %s", len(block_ids), why)
        self.stats["load_failures"] += 1
        self.load_errors.update(block_ids)

    def wait_for_layer_load(self, layer_name: str) -> None:
        if self.mover is None:
            return
        event = self.layer_events.pop(self.mover.index.get(layer_name, -1), None)
        if event is not None:
            torch.cuda.current_stream(self.mover.device).wait_event(event)

    def take_load_errors(self) -> set[int]:
        errors, self.load_errors = self.load_errors, set()
        return errors

    # ---- saves ----

    def _save_plan(self, meta: KvfabricMetadata) -> tuple[list[int], list[bytes]]:
        ids: list[int] = []
        hashes: list[bytes] = []
        for spec in meta.saves:
            ids.extend(spec.block_ids)
            hashes.extend(spec.hashes)
        return ids, hashes

    def save_kv_layer(self, meta: KvfabricMetadata, layer_name: str) -> None:
        """Starts copying this layer's saved blocks to staging while later layers compute (one round only)."""
        if self.client is None or self.mover is None or not self.saves_here:
            return
        layer = self.mover.index.get(layer_name)
        ids, _ = self._save_plan(meta)
        if layer is None or not ids or len(ids) > self.slots:
            return
        self.mover.after_compute()
        self.mover.gather(layer, ids, 0)
        self.saved_layers.add(layer)

    def wait_for_save(self, meta: KvfabricMetadata) -> None:
        for layer in list(self.layer_events):  # loads no attention layer waited for: ordered before the next step
            self.wait_for_layer_load(self.geometry.layer_names[layer])
        ids, hashes = self._save_plan(meta)
        gathered, self.saved_layers = self.saved_layers, set()
        if self.gpu_direct and ids and self.client is not None and self.saves_here:
            self._save_direct(ids, hashes)
            return
        if not ids or self.client is None or self.mover is None or not self.saves_here:
            return
        mover = self.mover
        mover.after_compute()
        for start in range(0, len(ids), self.slots):
            chunk = ids[start : start + self.slots]
            for layer in range(len(self.geometry.layer_names)):
                if start > 0 or layer not in gathered:
                    mover.gather(layer, chunk, 0)
            mover.synchronize()
            try:
                outcomes, stored, _ = self.client.save(list(range(len(chunk))), hashes[start : start + len(chunk)])
            except KvfabricError as err:
                self.stats["save_failures"] += 1
                log.warning("kvfabric: save of %d blocks failed, skipped: %s", len(chunk), err)
                return
            self._saved(outcomes, stored, len(chunk))

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.mover is not None:
            self.mover.synchronize()
            self.mover.close()
        if self.region is not None:
            self.region.close()
