"""A small vLLM engine without a GPU: vLLM's real Scheduler (which creates the connector's scheduler side through
KVConnectorFactory), the connector's worker side created the same way, and KV cache tensors made by vLLM's own
create_kv_cache_views on CPU memory. Only the model forward is simulated: a step writes each computed block's KV
pages with bytes derived from the block's hash, so any engine computing the same prefix writes the same bytes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import LlamaConfig
from vllm.config import (
    CacheConfig,
    DeviceConfig,
    KVTransferConfig,
    ModelConfig,
    ParallelConfig,
    SchedulerConfig,
    VllmConfig,
)
from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import sha256_cbor
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
    KVCacheTensor,
    MLAAttentionSpec,
    create_kv_cache_views,
)
from vllm.v1.kv_cache_layout import KVCacheLayout
from vllm.v1.request import Request, RequestStatus
from vllm.v1.structured_output import StructuredOutputManager

BLOCK_SIZE = 16
LAYERS = 2
MAX_MODEL_LEN = 512
LAYER_NAMES = [f"model.layers.{i}.self_attn.attn" for i in range(LAYERS)]


@lru_cache(maxsize=1)
def model_dir() -> str:
    """A tiny Llama config on disk (no weights: nothing runs the model)."""
    d = os.path.join(tempfile.mkdtemp(prefix="kvf-model-"), "tiny-llama")
    LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=MAX_MODEL_LEN,
        torch_dtype="bfloat16",
    ).save_pretrained(d)
    return d


def vllm_config(
    engine_socket: str, engine_id: str, extra: dict | None = None, tp_size: int = 1, batch_tokens: int = MAX_MODEL_LEN
) -> VllmConfig:
    model = ModelConfig(model=model_dir(), skip_tokenizer_init=True, dtype="bfloat16", max_model_len=MAX_MODEL_LEN)
    return VllmConfig(
        model_config=model,
        cache_config=CacheConfig(
            block_size=BLOCK_SIZE, enable_prefix_caching=True, prefix_caching_hash_algo="sha256_cbor"
        ),
        scheduler_config=SchedulerConfig(
            max_num_batched_tokens=batch_tokens, max_num_seqs=8, max_model_len=MAX_MODEL_LEN, is_encoder_decoder=False
        ),
        kv_transfer_config=KVTransferConfig(
            kv_connector="KvfabricConnector",
            kv_connector_module_path="kvfabric_vllm.connector",
            kv_role="kv_both",
            engine_id=engine_id,
            kv_connector_extra_config={"engine_socket": engine_socket, **(extra or {})},
        ),
        device_config=DeviceConfig("cpu"),
        parallel_config=ParallelConfig(tensor_parallel_size=tp_size),
    )


def kv_cache_config(num_blocks: int, layout: KVCacheLayout, mla: bool = False) -> KVCacheConfig:
    if mla:
        spec = MLAAttentionSpec(block_size=BLOCK_SIZE, num_kv_heads=1, head_size=32, dtype=torch.bfloat16)
    else:
        spec = FullAttentionSpec(block_size=BLOCK_SIZE, num_kv_heads=2, head_size=16, dtype=torch.bfloat16)
    page = spec.page_size_bytes
    if layout.name.startswith("L"):
        tensor = KVCacheTensor(page * num_blocks * LAYERS, LAYER_NAMES, page * num_blocks, page)
    else:
        tensor = KVCacheTensor(page * num_blocks * LAYERS, LAYER_NAMES, page, page * LAYERS)
    return KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[tensor],
        kv_cache_groups=[KVCacheGroupSpec(LAYER_NAMES, spec)],
        kv_cache_layout=layout.name,
    )


def block_bytes(block_hash: bytes, layer: int, size: int, shard: int = 0) -> bytes:
    """What the simulated forward writes into a layer's page of the block with this hash, on TP shard `shard`."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block_hash + bytes([layer, shard]) + counter.to_bytes(4, "little")).digest()
        counter += 1
    return bytes(out[:size])


class FakeEngine:
    def __init__(
        self,
        engine_socket: str,
        engine_id: str,
        num_blocks: int = 64,
        layout: str = "LBNHC",
        extra: dict | None = None,
        mla: bool = False,
        device: str = "cpu",
        tp_size: int = 1,
        batch_tokens: int = MAX_MODEL_LEN,
    ):
        init_none_hash(sha256_cbor)
        self.mla = mla
        self.config = vllm_config(engine_socket, engine_id, extra, tp_size, batch_tokens)
        self.kv_config = kv_cache_config(num_blocks, KVCacheLayout[layout], mla)
        self.config.cache_config.num_gpu_blocks = num_blocks
        self.scheduler = Scheduler(
            self.config, self.kv_config, StructuredOutputManager(self.config), block_size=BLOCK_SIZE
        )
        self.connector = self.scheduler.connector
        spec = self.kv_config.kv_cache_groups[0].kv_cache_spec
        self.page_bytes = spec.page_size_bytes
        tensor = self.kv_config.kv_cache_tensors[0]
        # one worker per TP rank, as vLLM makes them (the connector reads its rank from the parallel config here)
        self.workers = []
        self.kvs: list[dict[str, torch.Tensor]] = []
        for rank in range(tp_size):
            self.config.parallel_config.rank = rank
            worker = KVConnectorFactory.create_connector(self.config, KVConnectorRole.WORKER, self.kv_config)
            raw = torch.zeros(tensor.size, dtype=torch.int8, device=device)
            kv = dict(zip(LAYER_NAMES, create_kv_cache_views(raw, spec, num_blocks, KVCacheLayout[layout], tensor)))
            worker.register_kv_caches(kv)
            self.workers.append(worker)
            self.kvs.append(kv)
        self.config.parallel_config.rank = 0
        self.worker, self.kv = self.workers[0], self.kvs[0]
        self.hasher = get_request_block_hasher(BLOCK_SIZE, sha256_cbor)
        self.requests: dict[str, Request] = {}

    def add(self, request_id: str, tokens: list[int], **kwargs) -> Request:
        request = Request(request_id, tokens, SamplingParams(max_tokens=4), None, block_hasher=self.hasher, **kwargs)
        self.requests[request_id] = request
        self.scheduler.add_request(request)
        return request

    def page(self, block_id: int, layer: int, rank: int = 0) -> bytes:
        u8 = self.kvs[rank][LAYER_NAMES[layer]].view(torch.uint8)
        return u8[block_id].contiguous().cpu().numpy().tobytes()

    def expected(self, block_hash: bytes, layer: int, rank: int = 0) -> bytes:
        """The page a rank holds for this block: its own shard, or the one replicated (MLA) page."""
        return block_bytes(block_hash, layer, self.page_bytes, 0 if self.mla else rank)

    def write_page(self, block_id: int, layer: int, data: bytes, rank: int = 0) -> None:
        u8 = self.kvs[rank][LAYER_NAMES[layer]].view(torch.uint8)
        src = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        u8[block_id].copy_(src.view(u8[block_id].shape).to(u8.device))

    def step(self):
        """One engine step: schedule, load, simulated forward, save. Returns (scheduler output, load errors)."""
        out = self.scheduler.schedule()
        meta = out.kv_connector_metadata
        errors: set[int] = set()
        for worker in self.workers:
            worker.bind_connector_metadata(meta)
            if out.has_sync_kv_loads or meta.loads:
                worker.start_load_kv(None)
        cached = out.scheduled_cached_reqs
        computed = {r.req_id: r.num_computed_tokens for r in out.scheduled_new_reqs}
        computed.update(zip(cached.req_ids, cached.num_computed_tokens))
        for req_id, done in computed.items():  # the simulated forward of this step's tokens
            request = self.requests[req_id]
            block_ids = self.scheduler.kv_cache_manager.get_block_ids(req_id)[0]
            last = (done + out.num_scheduled_tokens[req_id]) // BLOCK_SIZE
            for i in range(done // BLOCK_SIZE, min(last, len(request.block_hashes))):
                for rank in range(len(self.workers)):
                    for layer in range(LAYERS):
                        self.write_page(block_ids[i], layer, self.expected(request.block_hashes[i], layer, rank), rank)
        for rank, worker in enumerate(self.workers):
            for name in LAYER_NAMES:
                worker.wait_for_layer_load(name)
                worker.save_kv_layer(name, self.kvs[rank][name], None)
            worker.wait_for_save()
            errors |= worker.get_block_ids_with_load_errors()
            worker.clear_connector_metadata()
        return out, errors

    def finish(self, request_id: str) -> None:
        self.scheduler.finish_requests(request_id, RequestStatus.FINISHED_ABORTED)

    def close(self) -> None:
        for worker in self.workers:
            worker.shutdown()
        self.connector.shutdown()
