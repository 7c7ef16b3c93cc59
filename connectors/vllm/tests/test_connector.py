"""The connector against the real vLLM classes (the pinned release) and real kvfabric-node processes."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys

import pytest
from engine_harness import BLOCK_SIZE, LAYERS, FakeEngine, block_bytes
from kvfabric_processes import CLI_BIN, Metaserver, Node, wait_until
from vllm.config import KVTransferConfig
from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1

from kvfabric_vllm.connector import KvfabricConnector

PROMPT = list(range(1, 70))  # 4 full blocks and 5 tokens


@pytest.fixture
def node():
    n = Node()
    yield n
    n.stop()


def test_subclasses_the_real_base_class_and_loads_through_the_factory():
    assert issubclass(KvfabricConnector, KVConnectorBase_V1)
    assert not inspect.isabstract(KvfabricConnector)
    abstract = {name for name, v in vars(KVConnectorBase_V1).items() if getattr(v, "__isabstractmethod__", False)}
    assert abstract >= {"get_num_new_matched_tokens", "build_connector_meta", "start_load_kv", "wait_for_save"}
    assert abstract <= set(vars(KvfabricConnector))
    config = KVTransferConfig(
        kv_connector="KvfabricConnector", kv_connector_module_path="kvfabric_vllm.connector", kv_role="kv_both"
    )
    assert KVConnectorFactory.get_connector_class(config) is KvfabricConnector


def saved_prompt(engine: FakeEngine, request_id: str = "a") -> list[int]:
    """Runs PROMPT through the engine (one step prefills it all) and returns the blocks it used."""
    engine.add(request_id, PROMPT)

    def scheduled():
        # with a metaserver the node first looks for the prefix elsewhere: LOADING, then READY with no hits
        o, errors = engine.step()
        assert errors == set()
        return o if o.num_scheduled_tokens else None

    out = wait_until(scheduled, f"{request_id} to be scheduled")
    assert out.num_scheduled_tokens == {request_id: len(PROMPT)}
    blocks = out.scheduled_new_reqs[0].block_ids[0]
    engine.finish(request_id)
    return blocks


def assert_loaded(engine: FakeEngine, request_id: str, out) -> list[int]:
    new = {r.req_id: r for r in out.scheduled_new_reqs}[request_id]
    assert new.num_computed_tokens == 4 * BLOCK_SIZE  # the 4 full blocks came from kvfabric
    assert out.num_scheduled_tokens[request_id] == len(PROMPT) - 4 * BLOCK_SIZE
    request = engine.requests[request_id]
    blocks = new.block_ids[0][:4]
    for i, block in enumerate(blocks):
        for layer in range(LAYERS):
            assert engine.page(block, layer) == block_bytes(request.block_hashes[i], layer, engine.page_bytes)
    return blocks


@pytest.mark.parametrize("layout", ["LBNHC", "BLHNC"])
def test_save_then_load_the_same_bytes_into_other_blocks(node, layout):
    a = FakeEngine(node.engine_socket, "engine-a", layout=layout)
    b = FakeEngine(node.engine_socket, "engine-b", layout=layout)
    try:
        assert a.connector.namespace == b.connector.namespace
        saved = saved_prompt(a)
        assert node.metric("kvfabric_save_sealed_blocks_total") == 4
        b.add("filler", list(range(100, 200)))  # takes B's first blocks, so the load lands elsewhere
        b.step()
        b.add("b", PROMPT)
        out, errors = b.step()
        assert errors == set()
        loaded = assert_loaded(b, "b", out)
        assert set(loaded).isdisjoint(saved[:4])
        assert node.metric("kvfabric_load_blocks_total") == 4
        assert node.metric("kvfabric_lease_consumed_total") == 1
        assert node.metric("kvfabric_lease_active") == 0
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("mla", [False, True], ids=["tp2", "tp2-mla"])
def test_every_tp_rank_saves_and_loads_its_shard_and_mla_is_stored_once(node, mla):
    a = FakeEngine(node.engine_socket, "tp-a", tp_size=2, mla=mla)
    b = FakeEngine(node.engine_socket, "tp-b", tp_size=2, mla=mla)
    try:
        assert a.connector.namespace.endswith(f"/tp2{'-mla' if mla else ''}/b16/2x{a.page_bytes}")
        assert node.metric("kvfabric_index_instances") == 4  # two ranks per engine (schedulers register at first query)
        saved_prompt(a)
        assert node.metric("kvfabric_save_sealed_blocks_total") == 4
        assert node.metric("kvfabric_save_blocks_total") == (4 if mla else 8)  # shard pages written
        b.add("b", PROMPT)
        out, errors = b.step()
        assert errors == set()
        new = {r.req_id: r for r in out.scheduled_new_reqs}["b"]
        assert new.num_computed_tokens == 4 * BLOCK_SIZE
        for rank in range(2):
            for i, block in enumerate(new.block_ids[0][:4]):
                for layer in range(LAYERS):
                    assert b.page(block, layer, rank) == b.expected(b.requests["b"].block_hashes[i], layer, rank)
        assert node.metric("kvfabric_load_blocks_total") == 8  # every rank loads
        assert node.metric("kvfabric_lease_consumed_total") == 1
    finally:
        a.close()
        b.close()


def test_a_second_node_pulls_the_prefix_loading_then_ready():
    ms = Metaserver()
    n1 = Node(ms)
    n2 = Node(ms)
    a = b = None
    try:
        a = FakeEngine(n1.engine_socket, "engine-a")
        saved_prompt(a)
        ns = a.connector.namespace
        last = a.requests["a"].block_hashes[3].hex()

        def advertised():
            res = subprocess.run(
                [
                    str(CLI_BIN),
                    "locate",
                    "--namespace",
                    ns,
                    "--hashes",
                    last,
                    "--output",
                    "json",
                    "--metaserver-addr",
                    ms.addr,
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            return res.returncode == 0 and json.loads(res.stdout)["nodes"]

        wait_until(advertised, "node 1 to advertise the saved blocks to the metaserver")
        b = FakeEngine(n2.engine_socket, "engine-b")
        b.add("b", PROMPT)
        out, _ = b.step()
        sched = b.connector.scheduler_side
        assert sched.loading_answers == 1  # LOADING: vLLM keeps the request waiting and asks again
        assert "b" not in out.num_scheduled_tokens

        def scheduled():
            o, errors = b.step()
            assert errors == set()
            return o if "b" in o.num_scheduled_tokens else None

        out = wait_until(scheduled, "the pull to finish (READY)")
        assert_loaded(b, "b", out)
        assert sched.last_breakdown == {"local": 0, "ssd": 0, "remote": 4}
        assert n2.metric("kvfabric_load_blocks_total") == 4
    finally:
        for e in (a, b):
            if e is not None:
                e.close()
        n1.stop()
        n2.stop()
        ms.stop()


def test_a_chunked_prefill_saves_each_chunk_s_full_blocks(node):
    a = FakeEngine(node.engine_socket, "chunked-a", batch_tokens=32)
    b = FakeEngine(node.engine_socket, "chunked-b")
    try:
        a.add("a", PROMPT)
        sealed = []
        for _ in range(3):  # 32 + 32 + 5 tokens
            out, errors = a.step()
            assert errors == set()
            sealed.append(node.metric("kvfabric_save_sealed_blocks_total"))
        assert sealed == [2, 4, 4]
        b.add("b", PROMPT)
        out, errors = b.step()
        assert errors == set()
        assert_loaded(b, "b", out)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("save_decode", [True, False])
def test_generated_blocks_are_saved_so_the_next_turn_hits_them(node, save_decode):
    a = FakeEngine(node.engine_socket, f"decode-a-{save_decode}", extra={"save_decode": save_decode})
    b = FakeEngine(node.engine_socket, f"decode-b-{save_decode}")
    try:
        request = a.add("a", PROMPT)
        out, errors = a.step()  # the prompt: 4 full blocks saved
        assert errors == set() and out.num_scheduled_tokens == {"a": len(PROMPT)}
        assert node.metric("kvfabric_save_sealed_blocks_total") == 4
        generated = list(range(500, 511))  # tokens 69..79: the 5th block fills with the last of them
        for token in generated:
            request.append_output_token_ids(token)  # what vLLM does with each sampled token
            out, errors = a.step()  # decode: that token's KV
            assert errors == set() and out.num_scheduled_tokens == {"a": 1}
        assert len(request.block_hashes) == 5
        assert node.metric("kvfabric_save_sealed_blocks_total") == (5 if save_decode else 4)
        # the next turn: this prompt, this answer, a new question
        b.add("b", PROMPT + generated + [900, 901, 902, 903, 904])
        out, errors = b.step()
        assert errors == set()
        new = out.scheduled_new_reqs[0]
        assert new.num_computed_tokens == (5 if save_decode else 4) * BLOCK_SIZE
        if save_decode:
            block = new.block_ids[0][4]
            for layer in range(LAYERS):
                assert b.page(block, layer) == block_bytes(request.block_hashes[4], layer, b.page_bytes)
    finally:
        a.close()
        b.close()


def test_without_a_node_at_start_the_engine_runs_without_kvfabric(tmp_path):
    engine = FakeEngine(str(tmp_path / "no-node.sock"), "engine-alone")
    try:
        assert engine.worker.worker_side.client is None
        engine.add("a", PROMPT)
        out, errors = engine.step()
        assert errors == set()
        assert out.num_scheduled_tokens == {"a": len(PROMPT)}
        assert engine.connector.scheduler_side.last_error.code == "UNAVAILABLE"
    finally:
        engine.close()


def test_node_down_means_no_external_hits_and_failed_loads_are_recomputed(node):
    a = FakeEngine(node.engine_socket, "engine-a")
    b = FakeEngine(node.engine_socket, "engine-b")
    try:
        saved_prompt(a)
        # the lease is handed out, then the node dies before the worker loads: vLLM recomputes those blocks
        b.add("b", PROMPT)
        out = b.scheduler.schedule()
        loads = out.kv_connector_metadata.loads
        assert [len(spec.block_ids) for spec in loads] == [4]
        node.stop()
        b.worker.bind_connector_metadata(out.kv_connector_metadata)
        b.worker.start_load_kv(None)
        b.worker.wait_for_save()
        assert b.worker.get_block_ids_with_load_errors() == set(loads[0].block_ids)
        b.worker.clear_connector_metadata()
        # with the node down, a new request is prefilled in full, and its saves fail quietly
        b.add("c", list(range(1000, 1080)))
        out, errors = b.step()
        assert errors == set()
        assert {r.req_id: r.num_computed_tokens for r in out.scheduled_new_reqs} == {"c": 0}
        assert out.num_scheduled_tokens["c"] == 80
        assert b.worker.worker_side.stats["save_failures"] >= 1
        assert b.connector.scheduler_side.last_error is not None
    finally:
        a.close()
        b.close()


KILLED_ENGINE = r"""
import sys
sys.path.insert(0, sys.argv[2])
from engine_harness import FakeEngine
e = FakeEngine(sys.argv[1], "engine-killed")
e.add("k", list(range(1, 70)))
out = e.scheduler.schedule()  # the scheduler's Query took a lease; the worker never loads it
print("leased", len(out.kv_connector_metadata.loads), flush=True)
sys.stdin.read()
"""


def test_an_engine_killed_loses_its_instances_and_leases(node):
    a = FakeEngine(node.engine_socket, "engine-a")
    try:
        saved_prompt(a)
    finally:
        a.close()
    wait_until(lambda: node.metric("kvfabric_index_instances") == 0, "engine A to unregister")
    tests = os.path.dirname(__file__)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_ENGINE, node.engine_socket, tests],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout.readline().split() == ["leased", "1"]
        assert node.metric("kvfabric_lease_active") == 1
        assert node.metric("kvfabric_index_instances") == 2  # the scheduler's and the worker's
        assert node.metric("kvfabric_index_pinned_blocks") == 4
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        wait_until(lambda: node.metric("kvfabric_lease_active") == 0, "the killed engine's lease to go")
        assert node.metric("kvfabric_index_instances") == 0
        assert node.metric("kvfabric_index_pinned_blocks") == 0
        assert node.metric("kvfabric_lease_released_total") == 1
    finally:
        if child.poll() is None:
            child.kill()
