"""The worker's KV staging memory: a sealed memfd handed over to the node as a descriptor (apps/node/README.md).

The node copies between its pool and this region; the connector copies between vLLM's KV cache and the region.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket

from .errors import KvfabricError

HANDOVER_GREETING = b"kvfabric-region/1"


class SealedRegion:
    """`size` bytes of shared memory: a memfd sealed against shrinking and growing, mapped into this process."""

    def __init__(self, name: str, size: int):
        if size <= 0:
            raise KvfabricError("INVALID_ARGUMENT", f"region size: expected a positive byte count, got {size}")
        self.size = size
        self.fd = os.memfd_create(name, os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
            self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise

    def hand_over(self, region_socket: str, timeout_s: float) -> str:
        """Sends the descriptor to the node's `<engine-socket>.regions`; returns the one-time token it answered."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(timeout_s)
            try:
                s.connect(region_socket)
                socket.send_fds(s, [HANDOVER_GREETING], [self.fd])
                reply = s.recv(512).decode("utf-8", "replace")
            except OSError as err:
                raise KvfabricError("UNAVAILABLE", f"region handover to {region_socket}: {err}") from err
        if reply.startswith("OK "):
            return reply[3:].strip()
        parts = reply.split(" ", 2)
        code = parts[1] if len(parts) > 1 and parts[0] == "ERR" else "INTERNAL"
        raise KvfabricError(code, f"region handover to {region_socket}: {reply or 'no answer'}")

    def region_spec(self, region_socket: str, timeout_s: float):
        """The RegisterInstance region: hands the descriptor over and names it by the token the node answered."""
        from .proto.kvfabric.v1 import node_pb2

        return node_pb2.RegionSpec(token=self.hand_over(region_socket, timeout_s), size_bytes=self.size)

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            self.map.close()
        except BufferError:
            pass  # a tensor still views the mapping; it goes with the process
        os.close(self.fd)
        self.fd = -1
