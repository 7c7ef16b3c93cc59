"""The GPU path: vLLM's KV cache in CUDA memory, through a real kvfabric-node: region "host" (copied to and from
the pinned staging region on the connector's own stream) and region "cuda_ipc" (the node opens the KV cache from its
CUDA IPC handles and copies on its own stream). Skipped, with the reason in pytest's summary, where CUDA is absent;
scripts/gpu-check.sh runs it on a GPU machine."""

from __future__ import annotations

import pytest
import torch
from engine_harness import LAYERS, FakeEngine, block_bytes
from kvfabric_processes import Node

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device: the GPU path (pinned staging, CUDA stream copies, CUDA IPC regions) is not run",
)

PROMPT = list(range(1, 70))


@pytest.mark.parametrize("region", ["host", "cuda_ipc"])
@pytest.mark.parametrize("layout", ["LBNHC", "BLHNC"])
def test_cuda_kv_saves_and_loads_through_the_node(layout, region):
    node = Node()
    a = b = None
    try:
        extra = {"region": region}
        a = FakeEngine(node.engine_socket, "gpu-a", layout=layout, device="cuda", extra=extra)
        b = FakeEngine(node.engine_socket, "gpu-b", layout=layout, device="cuda", extra=extra)
        side = a.worker.worker_side
        assert side.client is not None, "the node refused the registration (see its log)"
        if region == "host":
            assert side.mover.cuda and side.mover._pinned
        else:
            assert side.mover is None and side.region is None  # the node copies the GPU's KV itself
        a.add("a", PROMPT)
        a.step()
        assert node.metric("kvfabric_save_sealed_blocks_total") == 4
        b.add("filler", list(range(100, 200)))
        b.step()
        b.add("b", PROMPT)
        out, errors = b.step()
        torch.cuda.synchronize()
        assert errors == set()
        new = {r.req_id: r for r in out.scheduled_new_reqs}["b"]
        assert new.num_computed_tokens == 64
        for i, block in enumerate(new.block_ids[0][:4]):
            for layer in range(LAYERS):
                assert b.page(block, layer) == block_bytes(b.requests["b"].block_hashes[i], layer, b.page_bytes)
    finally:
        for e in (a, b):
            if e is not None:
                e.close()
        node.stop()
