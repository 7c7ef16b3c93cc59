"""`kvfabric hash` (packages/common hashTokenBlocks) computes exactly vLLM's block hashes: vLLM's own Request and
get_request_block_hasher with sha256_cbor, with and without PYTHONHASHSEED (unset: vLLM's fixed default seed;
empty: the seed ""), with a cache_salt, with a LoRA adapter (vLLM 0.33's tagged extra keys)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest
from kvfabric_processes import CLI_BIN, require_built
from vllm.lora.request import LoRARequest
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import sha256_cbor
from vllm.v1.core import kv_cache_utils
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, hash_block_tokens, init_none_hash
from vllm.v1.request import Request

BLOCK = 16
PROMPTS = {
    "short": list(range(1, 40)),  # 2 full blocks and a partial one
    "wide-ids": [151_643, 0, 65_535, 65_536, 4_294_967_295, 23, 24, 255, 256] * 6,  # CBOR head widths
    "long": [(i * 7919) % 50_000 for i in range(16 * 20)],
}
SEEDS = [None, "0", "", "abc"]
KEYS = {
    "plain": {},
    "salt": {"cache_salt": "tenant-7"},
    "lora": {"lora_request": LoRARequest("adapter-a", 1, "/models/adapter-a")},
    "lora+salt": {"lora_request": LoRARequest("adapter-b", 2, "/models/b"), "cache_salt": "s"},
}


def init_root(seed: str | None) -> None:
    """vLLM's init_none_hash(sha256_cbor) with PYTHONHASHSEED set to seed (None: unset) while it runs."""
    saved = os.environ.pop("PYTHONHASHSEED", None)
    try:
        if seed is not None:
            os.environ["PYTHONHASHSEED"] = seed
        init_none_hash(sha256_cbor)
    finally:
        os.environ.pop("PYTHONHASHSEED", None)
        if saved is not None:
            os.environ["PYTHONHASHSEED"] = saved


def vllm_hashes(tokens: list[int], seed: str | None, keys: dict) -> list[str]:
    """What vLLM computes for this request."""
    init_root(seed)
    request = Request(
        "r",
        tokens,
        SamplingParams(max_tokens=1),
        None,
        block_hasher=get_request_block_hasher(BLOCK, sha256_cbor),
        **keys,
    )
    return [h.hex() for h in request.block_hashes]


def cli_hashes(tokens: list[int], seed: str | None, keys: dict) -> dict:
    require_built()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(tokens, f)
    args = [str(CLI_BIN), "hash", "--tokens", f.name, "--block-size", str(BLOCK), "--output", "json"]
    if "cache_salt" in keys:
        args += ["--cache-salt", keys["cache_salt"]]
    if "lora_request" in keys:
        args += ["--lora-name", keys["lora_request"].lora_name, "--lora-path", keys["lora_request"].lora_path]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    os.unlink(f.name)
    assert res.returncode == 0, res.stderr
    return {"out": json.loads(res.stdout), "stderr": res.stderr}


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: "unset" if s is None else f"seed={s!r}")
@pytest.mark.parametrize("keys", list(KEYS), ids=str)
def test_kvfabric_hash_equals_vllm(seed, keys):
    for name, tokens in PROMPTS.items():
        want = vllm_hashes(tokens, seed, KEYS[keys])
        assert len(want) == len(tokens) // BLOCK
        got = cli_hashes(tokens, seed, KEYS[keys])
        assert got["out"]["hashes"] == want, f"prompt {name}"
        assert got["out"]["seed"] == (kv_cache_utils.DEFAULT_NONE_HASH_SEED if seed is None else seed)
        if seed is None:
            assert "vllm-none-hash" in got["stderr"]


def test_first_block_is_vllms_hash_block_tokens():
    tokens = PROMPTS["short"]
    init_root(None)
    salt = hash_block_tokens(sha256_cbor, None, tokens[:BLOCK], (("cache_salt", "tenant-7"),))
    plain = hash_block_tokens(sha256_cbor, None, tokens[:BLOCK], None)
    assert cli_hashes(tokens, None, KEYS["salt"])["out"]["hashes"][0] == salt.hex()
    assert cli_hashes(tokens, None, {})["out"]["hashes"][0] == plain.hex()
    assert salt != plain
