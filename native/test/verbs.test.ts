// The verbs transport without a device: it loads, reports why it is unavailable, and its handshake material
// round-trips and rejects malformed input precisely. The RDMA data path itself needs a NIC (native/README.md).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Pool } from '../lib/pool.js';
import {
  VerbsTransport,
  encodeVerbsMaterial,
  parseVerbsGrantKey,
  parseVerbsMaterial,
  type VerbsMaterial,
} from '../lib/verbs-transport.js';

const sample: VerbsMaterial = {
  nics: [0, 1].map((i) => ({ gid: Buffer.from(`00000000000000000000ffff0a58000${i + 1}`, 'hex'), lid: 7 + i, mtu: 5 })),
  rdAtom: 16,
  qps: [0, 1, 2, 3].map((j) => ({ nic: j % 2, qpn: 0x100 + j, psn: 0xabcdef - j })),
};

function invalid(buf: Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseVerbsMaterial(buf),
    (err: Error & { code: string }) => err.code === 'INVALID_ARGUMENT' && pattern.test(err.message),
  );
}

describe('verbs transport', () => {
  const hasDevice = VerbsTransport.available().ok;

  test(
    'available() and listDevices() report the host cleanly',
    { skip: hasDevice && 'an RDMA device exists here' },
    async () => {
      const a = VerbsTransport.available();
      assert.equal(a.ok, false);
      assert.ok(!a.ok && /no RDMA devices found|dlopen libibverbs|no active port/.test(a.reason), JSON.stringify(a));
      assert.deepEqual(VerbsTransport.listDevices(), []);
      const pool = Pool.create({ sizeBytes: 1 << 20 });
      try {
        await assert.rejects(
          VerbsTransport.create({ pool }),
          (err: Error & { code: string }) => err.code === 'TRANSPORT_UNAVAILABLE',
        );
        await assert.rejects(VerbsTransport.create({ pool, qpsPerPeer: 0 }), /options.qpsPerPeer/);
        await assert.rejects(VerbsTransport.create({ pool, nics: [] }), /options.nics/);
      } finally {
        pool.close();
      }
    },
  );

  test('material round-trips exactly', () => {
    const buf = encodeVerbsMaterial(sample);
    assert.equal(buf.length, 6 + 1 + 2 * 19 + 1 + 2 + 4 * 9);
    assert.deepEqual(parseVerbsMaterial(buf), sample);
  });

  test('malformed material is rejected with the offending field', () => {
    const good = encodeVerbsMaterial(sample);
    const mutate = (at: number, value: number, width = 1): Buffer => {
      const b = Buffer.from(good);
      b.writeUIntLE(value, at, width);
      return b;
    };
    const qps = 7 + 2 * 19 + 1; // offset of the qp count
    invalid(good.subarray(0, 3), /truncated at byte 0 reading magic/);
    invalid(mutate(0, 0x12345678, 4), /bad magic/);
    invalid(mutate(4, 1), /unsupported verbs material version 1/);
    invalid(mutate(5, 1), /material is for transport tcp, this is verbs/);
    invalid(mutate(6, 0), /nic count 0 out of range/);
    invalid(mutate(6, 17), /nic count 17 out of range/);
    invalid(mutate(6, 3), /nics\[2\]/);
    invalid(mutate(7 + 18, 6), /nics\[0\]\.mtu: expected an ibv_mtu in 1\.\.5, got 6/);
    invalid(mutate(qps - 1, 0), /rdAtom: expected at least 1/);
    invalid(mutate(qps, 0, 2), /qp count 0 out of range/);
    invalid(mutate(qps, 1025, 2), /qp count 1025 out of range/);
    invalid(mutate(qps + 2, 2), /qps\[0\]\.nic: 2 names no NIC \(2 listed\)/);
    invalid(mutate(qps + 3, 0, 4), /qps\[0\]\.qpn: expected 1\.\.0xffffff, got 0/);
    invalid(mutate(qps + 7, 0x1000000, 4), /qps\[0\]\.psn: expected a 24-bit value/);
    invalid(good.subarray(0, good.length - 1), /truncated .* reading qps\[3\]\.psn/);
    invalid(Buffer.concat([good, Buffer.from([0])]), /1 unexpected trailing bytes/);
  });

  test('grant keys are parsed strictly', () => {
    const key = Buffer.alloc(6 + 2 * 22);
    key.writeUInt8(1, 0);
    key.writeUInt8(1, 1);
    key.writeUInt32LE(2, 2);
    for (let i = 0; i < 2; i++) {
      const o = 6 + i * 22;
      key.writeBigUInt64LE(BigInt(i * 65536), o);
      key.writeBigUInt64LE(65536n, o + 8);
      key.writeUInt32LE(0x1234500 + i, o + 16);
      key.writeUInt16LE(i, o + 20);
    }
    assert.deepEqual(parseVerbsGrantKey(key), {
      mode: 'windows',
      windows: [0, 1].map((i) => ({ offset: i * 65536, length: 65536, rkey: 0x1234500 + i, qp: i })),
    });
    const bad = (mut: (b: Buffer) => Buffer, pattern: RegExp) =>
      assert.throws(
        () => parseVerbsGrantKey(mut(Buffer.from(key))),
        (e: Error & { code: string }) => e.code === 'INVALID_ARGUMENT' && pattern.test(e.message),
      );
    bad((b) => (b.writeUInt8(9, 0), b), /unsupported grant key version 9/);
    bad((b) => (b.writeUInt8(3, 1), b), /mode: expected 1/);
    bad((b) => (b.writeUInt32LE(3, 2), b), /truncated .* windows\[2\]\.offset/);
    bad((b) => (b.writeBigUInt64LE(0n, 6 + 8), b), /windows\[0\]: bad range/);
    bad((b) => b.subarray(0, b.length - 1), /truncated .* windows\[1\]\.qp/);
  });
});
