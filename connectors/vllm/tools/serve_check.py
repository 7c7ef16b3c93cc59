"""A short `vllm serve` on a GPU host with and without kvfabric (run by scripts/gpu-check.sh).

A tiny Llama with random weights (no download; no tokenizer: prompts are token ids), one kvfabric-node, and three
servers in turn, each with vLLM's own prefix cache off so that every reuse comes from kvfabric:
  baseline   without the connector: the same prompt twice, both prefilled
  kvfabric   with the connector: the first request saves the prompt's blocks, the second loads them
  restarted  a new vllm serve with the connector: the prompt's blocks come from the node (they outlive vLLM)
Prints time to first token per request and the node's save/load/hit counters.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as res:
        return res.read().decode()


def wait_http(url: str, proc: subprocess.Popen, tries: int, what: str) -> None:
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"serve_check: {what} exited with {proc.returncode}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"serve_check: {what} not ready at {url}")


def tiny_model(path: str, layers: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        vocab_size=32000,
        max_position_embeddings=8192,
        torch_dtype="bfloat16",
    )
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)


def ttft_ms(port: int, model: str, prompt: list[int]) -> float:
    body = json.dumps(
        {"model": model, "prompt": prompt, "max_tokens": 2, "stream": True, "return_token_ids": True}
    ).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as res:
        for line in res:
            if line.startswith(b"data:"):
                return (time.perf_counter() - start) * 1000
    raise SystemExit("serve_check: no streamed answer")


def metrics(http_addr: str) -> dict[str, float]:
    want = ("kvfabric_save_sealed_blocks_total", "kvfabric_load_blocks_total", "kvfabric_index_query_hits_total")
    out = {k: 0.0 for k in want}
    for line in get(f"http://{http_addr}/metrics").splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-tokens", type=int, default=4000)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kvf-serve-check-")
    model = os.path.join(work, "tiny-llama")
    tiny_model(model, args.layers)
    sock = os.path.join(work, "engine.sock")
    node_http = f"127.0.0.1:{free_port()}"
    node = subprocess.Popen(
        [
            str(REPO / "node_modules/.bin/kvfabric-node"),
            "--engine-socket",
            sock,
            "--pool-size",
            "8gib",
            "--addr",
            f"127.0.0.1:{free_port()}",
            "--http-addr",
            node_http,
            "--transport",
            "tcp",
        ],
        stdout=open(os.path.join(work, "node.log"), "wb"),  # noqa: SIM115 (open for the process lifetime)
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://{node_http}/health", node, 60, "kvfabric-node")
    rng = random.Random(7)
    prompt = [rng.randrange(100, 31000) for _ in range(args.prompt_tokens)]
    connector = json.dumps(
        {
            "kv_connector": "KvfabricConnector",
            "kv_connector_module_path": "kvfabric_vllm.connector",
            "kv_role": "kv_both",
            "kv_connector_extra_config": {"engine_socket": sock},
        }
    )
    rows = []
    try:
        for name, kv in (("baseline", None), ("kvfabric", connector), ("restarted", connector)):
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "vllm.entrypoints.cli.main",
                "serve",
                model,
                "--port",
                str(port),
                "--skip-tokenizer-init",
                "--max-model-len",
                "8192",
                "--no-enable-prefix-caching",
                "--enforce-eager",
                "--gpu-memory-utilization",
                "0.3",
                "--prefix-caching-hash-algo",
                "sha256_cbor",
                *(["--kv-transfer-config", kv] if kv else []),
            ]
            log = os.path.join(work, f"vllm-{name}.log")
            server = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115 (open for the process lifetime)
            try:
                wait_http(f"http://127.0.0.1:{port}/health", server, 600, f"vllm serve ({name}, log {log})")
                before = metrics(node_http)
                times = [ttft_ms(port, model, prompt) for _ in range(1 if name == "restarted" else 2)]
                after = metrics(node_http)
                rows.append((name, times, {k: after[k] - before[k] for k in after}))
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=120)
    finally:
        node.terminate()
        node.wait(timeout=30)
    blocks = args.prompt_tokens // 16
    print(
        f"\nprompt {args.prompt_tokens} tokens ({blocks} blocks of 16), tiny Llama {args.layers} layers, prefix cache off"
    )
    print(f"{'server':<10} {'TTFT ms per request':<28} {'saved':>6} {'loaded':>7} {'hits':>6}")
    for name, times, d in rows:
        ttfts = ", ".join(f"{t:.1f}" for t in times)
        print(
            f"{name:<10} {ttfts:<28} {d['kvfabric_save_sealed_blocks_total']:>6.0f} "
            f"{d['kvfabric_load_blocks_total']:>7.0f} {d['kvfabric_index_query_hits_total']:>6.0f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
