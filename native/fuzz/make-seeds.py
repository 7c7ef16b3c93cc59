#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the tcp fuzzers into native/fuzz/corpus/<target>/.

Run again after a wire change (the header version is read from src/tcp_wire.h). The layouts follow the harness
comments in tcp_server_fuzz.cc and tcp_client_fuzz.cc: byte 0 picks the mode and the write size.
"""
import pathlib
import re
import struct

here = pathlib.Path(__file__).resolve().parent
version = int(re.search(r"kVersion = (\d+)", (here.parent / "src" / "tcp_wire.h").read_text()).group(1))
MAGIC = 0x5446564B
HELLO, HELLO_OK, HELLO_REFUSED, READ, DATA, ERROR = 1, 2, 3, 4, 5, 6
GRANT = b"fuzz-grant-live1"
FOREIGN = b"fuzz-grant-other"
EXPIRED = b"fuzz-grant-old00"


def frame(type_, req=0, grant=b"\0" * 16, count=0, code=0, payload=b""):
    return struct.pack("<IHHQ16sIHHQ", MAGIC, version, type_, req, grant, count, code, 0, len(payload)) + payload


def read(req, grant, *descs):
    return frame(READ, req, grant, len(descs), payload=b"".join(struct.pack("<QQ", o, n) for o, n in descs))


def hello(peer, proof):
    return frame(HELLO, payload=struct.pack("<H", len(peer)) + peer + proof)


server = {
    "raw-hello-wrong-proof": b"\x00" + hello(b"fuzz-reader", b"\x55" * 32),
    "raw-hello-unknown-peer": b"\x00" + hello(b"nobody", b"\x00" * 32),
    "raw-read-before-hello": b"\x00" + read(1, GRANT, (4096, 64)),
    "raw-http": b"\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "authed-read-one": b"\x01" + read(1, GRANT, (4096, 64)),
    "authed-read-across-merged": b"\x01" + read(2, GRANT, (6000, 300), (10240, 1024), (4096, 1)),
    "authed-refusals": b"\x01"
    + read(3, FOREIGN, (0, 10))
    + read(4, EXPIRED, (12288, 10))
    + read(5, GRANT, (8000, 10))
    + read(6, GRANT, (4096, 0))
    + read(7, GRANT, (2**64 - 16, 32)),
    "authed-pipelined-bytewise": b"\x03" + read(8, GRANT, (4100, 8)) + read(9, GRANT, (10300, 9)),
    "authed-bad-count": b"\x01" + frame(READ, 10, GRANT, 2000, payload=b"\0" * 32),
    "authed-second-hello": b"\x01" + hello(b"fuzz-reader", b"\0" * 32),
}

# tcp_client_fuzz.cc: byte 0 bit 0 = 0: the bytes after it are the whole reply to HELLO;
# bit 0 = 1: HELLO_OK is sent, then the bytes after it are answers, each header's req < 256 picking a request.
client = {
    "hello-ok": b"\x00" + frame(HELLO_OK),
    "hello-refused": b"\x00" + frame(HELLO_REFUSED, payload=b"unknown peer or wrong secret"),
    "hello-ok-with-payload": b"\x00" + frame(HELLO_OK, payload=b"x"),
    "data-exact": b"\x01" + frame(DATA, 0, payload=(bytes(range(256)) * 16)[:4000]),
    "error-refused": b"\x01" + frame(ERROR, 0, code=1, payload=b"grant refused"),
    "error-empty": b"\x01" + frame(ERROR, 0, code=2),
    "data-short-then-close": b"\x01" + frame(DATA, 0, payload=b"\xab" * 4000)[: 48 + 1000],
    "data-wrong-length": b"\x01" + frame(DATA, 0, payload=b"\xab" * 10),
}

for target, seeds in (("tcp_server", server), ("tcp_client", client)):
    d = here / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (d / name).write_bytes(data)
    print(f"{target}: {len(seeds)} seeds in {d}")
