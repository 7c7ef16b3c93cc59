"""Region "cuda_ipc" (the node opens the KV cache's GPU memory from CUDA IPC handles) without a GPU: a node without
a CUDA driver refuses the registration naming the reason, malformed fields are refused naming the field, and the
client's save / query / load run end to end against a node using the CUDA driver stand-in (native/test/fake-cuda:
"device memory" is a file). The GPU itself: test_gpu.py."""

from __future__ import annotations

import ctypes
import os
import tempfile

import pytest
from engine_harness import FakeEngine
from kvfabric_processes import REPO, Node

from kvfabric_vllm.engine_client import EngineClient, Geometry
from kvfabric_vllm.errors import KvfabricError
from kvfabric_vllm.gpu_region import CudaIpcPart, CudaIpcRegion

FAKE_CUDA = REPO / "native/build/fake-cuda"
SEG, BLOCKS = 4096, 16


def has_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def register(client: EngineClient, region: CudaIpcRegion, segments: int = 1) -> None:
    client.register(
        instance_id="gpu-0",
        engine_id="gpu",
        namespace="gpu/ns",
        region=region,
        geometry=Geometry([s * SEG * BLOCKS for s in range(segments)], SEG, SEG, BLOCKS),
    )


@pytest.fixture
def node():
    n = Node()
    yield n
    n.stop()


def test_a_node_without_a_driver_refuses_the_region_naming_why(node):
    client = EngineClient(node.engine_socket, 5.0)
    try:
        with pytest.raises(KvfabricError) as err:
            register(client, CudaIpcRegion(0, (CudaIpcPart(b"\1" * 64, 0, SEG * BLOCKS),)))
        assert err.value.code == "REGION_INVALID"
        if has_driver():  # a GPU host: the driver refuses the made-up handle
            assert "region.cuda_ipc.parts[0].handle" in err.value.message
        else:
            assert "region.cuda_ipc: CUDA IPC region: no CUDA driver: dlopen libcuda.so.1" in err.value.message
        assert client.status().instances == 0
    finally:
        client.close()


@pytest.mark.parametrize(
    ("part", "field"),
    [
        (CudaIpcPart(b"\1" * 10, 0, SEG * BLOCKS), "region.cuda_ipc.parts[0].handle: expected 64 bytes"),
        (CudaIpcPart(b"\1" * 64, 0, 0), "region.cuda_ipc.parts[0].size_bytes"),
        (CudaIpcPart(b"\1" * 64, 2**53 - 10, SEG * BLOCKS), "region.cuda_ipc.parts[0].offset_bytes"),
        (CudaIpcPart(b"\1" * 64, 2**60, SEG * BLOCKS), "region.cuda_ipc.parts[0].offset_bytes: expected at most 2^53"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(node, part, field):
    client = EngineClient(node.engine_socket, 5.0)
    try:
        with pytest.raises(KvfabricError) as err:
            register(client, CudaIpcRegion(0, (part,)))
        assert err.value.code == "INVALID_ARGUMENT"
        assert field in err.value.message
    finally:
        client.close()


def fake_handle(path: str) -> bytes:
    """A handle of the driver stand-in: its magic, then the path of the file that is the allocation."""
    return (b"kvf-fake-cuda/1\0" + path.encode()).ljust(64, b"\0")


def test_save_and_load_through_the_cuda_driver_stand_in():
    assert (FAKE_CUDA / "libcuda.so.1").exists(), "build the stand-in first: bash native/test/fake-cuda/build.sh"
    shm = tempfile.mkdtemp(prefix="kvf-cuda-", dir="/dev/shm")
    files = [os.path.join(shm, f"l{i}") for i in range(2)]
    for f in files:
        with open(f, "wb") as out:
            out.truncate(SEG * BLOCKS)
    env = {"LD_LIBRARY_PATH": ":".join(p for p in (str(FAKE_CUDA), os.environ.get("LD_LIBRARY_PATH")) if p)}
    n = Node(env=env)
    client = EngineClient(n.engine_socket, 5.0)
    try:
        region = CudaIpcRegion(0, tuple(CudaIpcPart(fake_handle(f), 0, SEG * BLOCKS) for f in files))
        register(client, region, segments=2)
        blocks = {b: os.urandom(2 * SEG) for b in range(3)}
        for b, data in blocks.items():
            for layer, f in enumerate(files):
                with open(f, "r+b") as out:
                    out.seek(b * SEG)
                    out.write(data[layer * SEG : (layer + 1) * SEG])
        hashes = [bytes([b + 1]) * 32 for b in blocks]
        outcomes, stored, sealed = client.save(list(blocks), hashes)
        assert (list(outcomes), stored, sealed) == ([0, 0, 0], 3, 3)
        answer = client.query("q", hashes, local_only=True)
        assert answer.hits == 3
        assert client.load(answer.lease_id, [10, 11, 12]) == (3, 3 * 2 * SEG)
        for i, data in enumerate(blocks.values()):
            got = b""
            for f in files:
                with open(f, "rb") as src:
                    src.seek((10 + i) * SEG)
                    got += src.read(SEG)
            assert got == data, f"block {10 + i}"
    finally:
        client.close()
        n.stop()
        for f in files:
            os.unlink(f)
        os.rmdir(shm)


def test_the_connector_wants_the_kv_cache_on_cuda_for_cuda_ipc(node):
    with pytest.raises(KvfabricError) as err:
        FakeEngine(node.engine_socket, "cpu-kv", extra={"region": "cuda_ipc"})
    assert err.value.code == "CONFIG_INVALID"
    assert "region cuda_ipc needs the KV cache on CUDA" in err.value.message
