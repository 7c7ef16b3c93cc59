"""kv_connector_extra_config validation and the derived namespace (pure functions)."""

from __future__ import annotations

import pytest

from kvfabric_vllm.config import PageGeometry, derive_namespace, parse_extra_config
from kvfabric_vllm.errors import KvfabricError

GEOMETRY = PageGeometry(tuple(f"l{i}" for i in range(32)), 65536, 16, False)


def test_defaults_and_values():
    cfg = parse_extra_config({"engine_socket": "/s", "namespace": "ns-1", "staging_blocks": 64, "deadline_s": 2})
    assert (cfg.engine_socket, cfg.namespace, cfg.staging_blocks, cfg.deadline_s) == ("/s", "ns-1", 64, 2)
    assert parse_extra_config(None).engine_socket == "/run/kvfabric/engine.sock"


def test_every_problem_is_named_together():
    with pytest.raises(KvfabricError) as err:
        parse_extra_config(
            {"engine_sock": "/s", "staging_blocks": 0, "local_only": "yes", "namespace": "a b", "deadline_s": True}
        )
    message = err.value.message
    assert err.value.code == "CONFIG_INVALID"
    for part in (
        "engine_sock: unknown key",
        "staging_blocks: expected 1..16777216, got 0",
        "local_only: expected bool, got 'yes'",
        "namespace: expected 1..128 characters",
        "deadline_s: expected int or float, got True",
    ):
        assert part in message


def test_region_is_host_or_cuda_ipc():
    assert parse_extra_config(None).region == "host"
    assert parse_extra_config({"region": "cuda_ipc"}).region == "cuda_ipc"
    with pytest.raises(KvfabricError) as err:
        parse_extra_config({"region": "gpu"})
    assert "region: expected one of host, cuda_ipc, got 'gpu'" in err.value.message


def test_namespace_names_model_dtype_tp_block_and_geometry():
    assert derive_namespace("meta-llama/Llama-3.1-8B", "torch.bfloat16", 2, GEOMETRY) == (
        "vllm/meta-llama/Llama-3.1-8B/bfloat16/tp2/b16/32x65536"
    )
    mla = PageGeometry(("a",), 1152, 64, True)
    assert (
        derive_namespace("/data/models/DeepSeek V3/", "torch.float16", 8, mla)
        == "vllm/DeepSeek-V3/float16/tp8-mla/b64/1x1152"
    )
    long = derive_namespace("org/" + "m" * 200, "torch.bfloat16", 1, GEOMETRY)
    assert len(long) == 128 and long.endswith("/bfloat16/tp1/b16/32x65536")
    assert long != derive_namespace("org/" + "m" * 199 + "n", "torch.bfloat16", 1, GEOMETRY)
