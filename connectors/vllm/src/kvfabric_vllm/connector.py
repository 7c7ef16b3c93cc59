"""KvfabricConnector: vLLM's KV connector (KVConnectorBase_V1 of the pinned vLLM release) for a kvfabric-node.

Load it without a fork:

    --kv-transfer-config '{"kv_connector":"KvfabricConnector","kv_connector_module_path":"kvfabric_vllm.connector",
                           "kv_role":"kv_both","kv_connector_extra_config":{"engine_socket":"/run/kvfabric/engine.sock"}}'

This class only routes vLLM's calls to the scheduler side (scheduler.py) or the worker side (worker.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)
from vllm.v1.metrics.cache_hit_source import CacheHitSource

from .config import derive_namespace, page_geometry, parse_extra_config
from .metadata import KvfabricMetadata
from .scheduler import SchedulerSide
from .worker import WorkerSide

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.attention.backend import AttentionMetadata
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks, KVCacheManager
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

log = logging.getLogger("kvfabric_vllm")


def _tp_rank(vllm_config: VllmConfig) -> int:
    try:
        from vllm.distributed.parallel_state import get_tensor_model_parallel_rank

        return get_tensor_model_parallel_rank()
    except (AssertionError, AttributeError, RuntimeError):
        return vllm_config.parallel_config.rank % vllm_config.parallel_config.tensor_parallel_size


class KvfabricConnector(KVConnectorBase_V1):
    _cache_hit_source = CacheHitSource.EXTERNAL_UNSPECIFIED

    def __init__(self, vllm_config: VllmConfig, role: KVConnectorRole, kv_cache_config: KVCacheConfig):
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        cfg = parse_extra_config(self._kv_transfer_config.kv_connector_extra_config)
        geometry = page_geometry(kv_cache_config)
        tp_size = vllm_config.parallel_config.tensor_parallel_size
        model = vllm_config.model_config
        self.namespace = cfg.namespace or derive_namespace(model.model, str(model.dtype), tp_size, geometry)
        # One id per engine core: its scheduler and every TP rank share it (the node lets them share leases); data
        # parallel engines are separate engines.
        parallel = vllm_config.parallel_config
        engine_id = self._kv_transfer_config.engine_id or "vllm"
        if parallel.data_parallel_size > 1:
            engine_id = f"{engine_id}-dp{parallel.data_parallel_rank}"
        block_size = geometry.block_size
        slots = cfg.staging_blocks or max(1, min(kv_cache_config.num_blocks, -(-model.max_model_len // block_size)))
        self.scheduler_side: SchedulerSide | None = None
        self.worker_side: WorkerSide | None = None
        if role == KVConnectorRole.SCHEDULER:
            self.scheduler_side = SchedulerSide(
                cfg,
                geometry,
                self.namespace,
                engine_id,
                tp_size,
                kv_cache_config.hash_block_size or block_size,
                max_load_blocks=slots,
            )
        else:
            self.worker_side = WorkerSide(
                cfg,
                geometry,
                self.namespace,
                engine_id,
                tp_size,
                _tp_rank(vllm_config),
                kv_cache_config.num_blocks,
                slots,
            )
        log.info(
            "kvfabric connector (%s) for namespace %s, node %s", role.name.lower(), self.namespace, cfg.engine_socket
        )

    @property
    def requires_kv_delivery(self) -> bool:
        return False  # a cache: a dropped save is a future miss

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config: dict[str, Any]) -> bool:
        return True  # wait_for_layer_load and save_kv_layer must run between the graph's pieces

    # ---- worker side ----

    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        assert self.worker_side is not None
        self.worker_side.register_kv_caches(kv_caches)

    def _meta(self) -> KvfabricMetadata:
        meta = self._get_connector_metadata()
        assert isinstance(meta, KvfabricMetadata)
        return meta

    def start_load_kv(self, forward_context: ForwardContext, **kwargs: Any) -> None:
        assert self.worker_side is not None
        self.worker_side.start_load_kv(self._meta())

    def wait_for_layer_load(self, layer_name: str) -> None:
        assert self.worker_side is not None
        self.worker_side.wait_for_layer_load(layer_name)

    def save_kv_layer(
        self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: AttentionMetadata, **kwargs: Any
    ) -> None:
        assert self.worker_side is not None
        if self.has_connector_metadata():
            self.worker_side.save_kv_layer(self._meta(), layer_name)

    def wait_for_save(self) -> None:
        assert self.worker_side is not None
        if self.has_connector_metadata():
            self.worker_side.wait_for_save(self._meta())

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        return None, None  # loads and saves complete within their step

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self.worker_side.take_load_errors() if self.worker_side is not None else set()

    # ---- scheduler side ----

    def bind_kv_cache_manager(self, kv_cache_manager: KVCacheManager) -> None:
        super().bind_kv_cache_manager(kv_cache_manager)
        if self.scheduler_side is not None:
            self.scheduler_side.kv_cache_manager = kv_cache_manager

    def on_new_request(self, request: Request) -> None:
        assert self.scheduler_side is not None
        self.scheduler_side.on_new_request(request)

    def get_num_new_matched_tokens(self, request: Request, num_computed_tokens: int) -> tuple[int | None, bool]:
        assert self.scheduler_side is not None
        return self.scheduler_side.get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request: Request, blocks: KVCacheBlocks, num_external_tokens: int) -> None:
        assert self.scheduler_side is not None
        self.scheduler_side.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: SchedulerOutput) -> KVConnectorMetadata:
        assert self.scheduler_side is not None
        return self.scheduler_side.build_connector_meta(scheduler_output)

    def request_finished(self, request: Request, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        assert self.scheduler_side is not None
        return self.scheduler_side.request_finished(request)

    def shutdown(self) -> None:
        if self.scheduler_side is not None:
            self.scheduler_side.shutdown()
        if self.worker_side is not None:
            self.worker_side.shutdown()
