"""vLLM's per-layer KV views as kvfabric pages (pure tensor logic)."""

from __future__ import annotations

import pytest
import torch

from kvfabric_vllm.errors import KvfabricError
from kvfabric_vllm.kv_pages import is_dense, layer_pages


def test_block_pages_of_a_layer_outermost_view():
    kv = torch.arange(4 * 2 * 16 * 8, dtype=torch.int16).view(4, 2, 16, 8)  # [B, H, N, C]
    pages = layer_pages("l0", kv, 4, 2 * 16 * 8 * 2)
    assert pages.shape == (4, 512)
    assert pages[2].numpy().tobytes() == kv[2].contiguous().numpy().tobytes()


def test_a_dense_page_in_another_dimension_order_is_one_run():
    raw = torch.zeros(4, 16, 2, 8, dtype=torch.int16)  # physically [B, N, H, C] (LBNHC)
    kv = raw.permute(0, 2, 1, 3)  # the logical [B, H, N, C] view vLLM hands over
    assert is_dense(kv[0]) and not kv[0].is_contiguous()
    raw[1].fill_(0x0707)  # every byte 7
    assert set(layer_pages("l0", kv, 4, 512)[1].tolist()) == {7}


def test_kernel_blocks_make_one_page():
    kv = torch.zeros(8, 2, 8, 8, dtype=torch.int16)  # 4 blocks of 16 tokens as 8 kernel blocks of 8
    kv[2:4].fill_(0x0303)  # every byte 3
    pages = layer_pages("l0", kv, 4, 2 * 8 * 8 * 2 * 2)
    assert set(pages[1].tolist()) == {3} and set(pages[0].tolist()) == {0}


def test_layouts_without_contiguous_pages_are_refused_naming_the_layer():
    kv = torch.zeros(2, 4, 16, 8, dtype=torch.int16).permute(1, 0, 2, 3)  # heads outside blocks (LHBNC)
    with pytest.raises(
        KvfabricError, match=r"kv_caches\['l3'\]: a block's page is not contiguous.*VLLM_KV_CACHE_LAYOUT"
    ):
        layer_pages("l3", kv, 4, 512)
    with pytest.raises(
        KvfabricError, match=r"kv_caches\['l3'\]: a block's page is 512 bytes, the KV cache spec says 1024"
    ):
        layer_pages("l3", torch.zeros(4, 2, 16, 8, dtype=torch.int16), 4, 1024)
    with pytest.raises(KvfabricError, match="5 blocks is not a multiple of num_blocks 4"):
        layer_pages("l3", torch.zeros(5, 2, 16, 8, dtype=torch.int16), 4, 512)


def test_keys_are_vllms_hashes_one_per_vllm_block_when_hashing_is_finer():
    from vllm.sampling_params import SamplingParams
    from vllm.utils.hashing import sha256_cbor
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.request import Request

    from kvfabric_vllm.scheduler import block_hashes

    init_none_hash(sha256_cbor)
    fine = Request(
        "r", list(range(70)), SamplingParams(max_tokens=1), None, block_hasher=get_request_block_hasher(8, sha256_cbor)
    )
    coarse = Request(
        "r", list(range(70)), SamplingParams(max_tokens=1), None, block_hasher=get_request_block_hasher(16, sha256_cbor)
    )
    assert len(fine.block_hashes) == 8
    assert block_hashes(fine, 16, 8) == list(fine.block_hashes)[1::2]
    assert block_hashes(coarse, 16, 16) == list(coarse.block_hashes)
