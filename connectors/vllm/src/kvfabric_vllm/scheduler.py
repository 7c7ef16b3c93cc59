"""The scheduler side: asks the node how much of a request's prefix it holds (keys: vLLM's own block hashes),
keeps the lease until the workers load it, and tells the workers which blocks to save: every full block once its
KV is computed, the prompt's and (save_decode, the default) the generated ones.

The node's Query needs a registered instance: the scheduler registers a one-block instance of the engine (same
engine id as the workers), so the leases it gets may be loaded by every TP rank of the engine. A node that answers
LOADING (it is pulling the rest from SSD or a peer) makes get_num_new_matched_tokens answer None: vLLM asks again
on a later step and the scheduler loop never blocks. A node that cannot be reached means "no external hits" (the
request is prefilled) for retry_after_s, then the connector tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import ConnectorConfig, PageGeometry
from .engine_client import EngineClient, layer_major
from .errors import KvfabricError
from .metadata import KvfabricMetadata, LoadSpec, SaveSpec
from .region import SealedRegion

log = logging.getLogger("kvfabric_vllm")


@dataclass
class RequestState:
    request: Any
    lease_id: str = ""
    start: int = 0  # first vLLM block of the hit
    hits: int = 0  # blocks of the hit offered to vLLM
    saved: int = 0  # blocks [0, saved) are saved or known to be held by kvfabric


def block_hashes(request: Any, block_size: int, hash_block_size: int) -> list[bytes]:
    """vLLM's hash of each full vLLM block: the last hash_block_size hash inside it."""
    hashes = request.block_hashes
    ratio = block_size // hash_block_size
    if ratio == 1:
        return list(hashes)
    return [hashes[i] for i in range(ratio - 1, len(hashes), ratio)]


class SchedulerSide:
    def __init__(
        self,
        cfg: ConnectorConfig,
        geometry: PageGeometry,
        namespace: str,
        engine_id: str,
        tp_size: int,
        hash_block_size: int,
        max_load_blocks: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.geometry = geometry
        self.namespace = namespace
        self.engine_id = engine_id
        self.tp_size = tp_size
        self.block_size = geometry.block_size
        self.hash_block_size = hash_block_size
        self.max_load_blocks = max_load_blocks
        self.clock = clock
        self.client: EngineClient | None = None
        self.region: SealedRegion | None = None
        self.down_until = 0.0
        self.last_error: KvfabricError | None = None
        self.requests: dict[str, RequestState] = {}
        self.pending_loads: list[LoadSpec] = []
        self.kv_cache_manager: Any = None
        self.queries = 0
        self.loading_answers = 0
        self.hit_blocks = 0
        self.last_breakdown: dict = {}

    # ---- the node ----

    def _connect(self) -> EngineClient | None:
        if self.client is not None and self.client.session_error is None:
            return self.client
        if self.clock() < self.down_until:
            return None
        self._drop_client()
        client = EngineClient(self.cfg.engine_socket, self.cfg.deadline_s, self.cfg.region_socket)
        region = SealedRegion(f"kvfabric-{self.engine_id}-sched", self.geometry.page_bytes)
        try:
            client.register(
                instance_id=f"{self.engine_id}-sched",
                engine_id=self.engine_id,
                namespace=self.namespace,
                region=region,
                geometry=layer_major(len(self.geometry.layer_names), self.geometry.segment_bytes, 1),
                tp_size=self.tp_size,
                replicated=self.geometry.replicated,
            )
        except KvfabricError as err:
            client.close()
            region.close()
            self._down(err)
            return None
        self.client, self.region = client, region
        return client

    def _down(self, err: KvfabricError) -> None:
        if self.last_error is None or self.clock() >= self.down_until:
            log.warning(
                "kvfabric node %s unavailable, no external hits for %.1f s: %s",
                self.cfg.engine_socket,
                self.cfg.retry_after_s,
                err,
            )
        self.last_error = err
        self.down_until = self.clock() + self.cfg.retry_after_s
        self._drop_client()

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.region is not None:
            self.region.close()
            self.region = None

    def _release(self, state: RequestState) -> None:
        lease, state.lease_id = state.lease_id, ""
        if lease and self.client is not None:
            try:
                self.client.release(lease)
            except KvfabricError:
                pass  # expired, or the node is gone: the lease is gone either way

    # ---- vLLM's scheduler hooks ----

    def on_new_request(self, request: Any) -> None:
        self.requests.setdefault(request.request_id, RequestState(request))

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple[int | None, bool]:
        state = self.requests.setdefault(request.request_id, RequestState(request))
        self._release(state)
        hashes = block_hashes(request, self.block_size, self.hash_block_size)
        # vLLM computes at least the prompt's last token itself
        end = min(len(hashes), (request.num_tokens - 1) // self.block_size)
        start = num_computed_tokens // self.block_size
        if start >= end:
            return 0, False
        client = self._connect()
        if client is None:
            return 0, False
        try:
            answer = client.query(f"{request.request_id}/{start}", hashes[start:end], local_only=self.cfg.local_only)
        except KvfabricError as err:
            self._down(err)
            return 0, False
        self.queries += 1
        if answer.loading:
            self.loading_answers += 1
            return None, False
        self.last_breakdown = answer.breakdown
        hits = min(answer.hits, self.max_load_blocks)
        if hits == 0:
            if answer.lease_id:
                state.lease_id = answer.lease_id
                self._release(state)
            return 0, False
        state.lease_id, state.start, state.hits = answer.lease_id, start, hits
        return hits * self.block_size, False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        state = self.requests.get(request.request_id)
        if state is None:
            return
        if num_external_tokens <= 0 or not state.lease_id:
            self._release(state)
            return
        n = min(num_external_tokens // self.block_size, state.hits)
        block_ids = list(blocks.get_block_ids()[0][state.start : state.start + n])
        self.pending_loads.append(LoadSpec(request.request_id, state.lease_id, block_ids))
        self.hit_blocks += n
        state.lease_id = ""  # the workers consume it
        state.saved = max(state.saved, state.start + n)

    def build_connector_meta(self, scheduler_output: Any) -> KvfabricMetadata:
        meta = KvfabricMetadata(loads=self.pending_loads)
        self.pending_loads = []
        scheduled = scheduler_output.num_scheduled_tokens
        for req in scheduler_output.scheduled_new_reqs:
            self._add_save(meta, req.req_id, req.num_computed_tokens + scheduled.get(req.req_id, 0), req.block_ids[0])
        cached = scheduler_output.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):
            self._add_save(meta, req_id, cached.num_computed_tokens[i] + scheduled.get(req_id, 0), None)
        return meta

    def _add_save(self, meta: KvfabricMetadata, req_id: str, computed: int, block_ids: list[int] | None) -> None:
        state = self.requests.get(req_id)
        if state is None:
            return
        request = state.request
        hashes = block_hashes(request, self.block_size, self.hash_block_size)
        # Blocks whose every token's KV exists after this step: a block's hash exists once its tokens are known
        # (sampled), so speculative tokens beyond them never make a block saved here.
        upto = computed if self.cfg.save_decode else min(computed, request.num_prompt_tokens)
        full = min(upto // self.block_size, len(hashes))
        if full <= state.saved:
            return
        if block_ids is None:
            if self.kv_cache_manager is None:
                return
            block_ids = self.kv_cache_manager.get_block_ids(req_id)[0]
        if len(block_ids) < full:
            return
        meta.saves.append(SaveSpec(req_id, list(block_ids[state.saved : full]), hashes[state.saved : full]))
        state.saved = full

    def request_finished(self, request: Any) -> tuple[bool, dict | None]:
        state = self.requests.pop(request.request_id, None)
        if state is not None:
            self._release(state)
        return False, None

    def shutdown(self) -> None:
        for state in self.requests.values():
            self._release(state)
        self._drop_client()
