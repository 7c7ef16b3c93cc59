// The verbs transport without a device: it loads, reports why it is unavailable, and its handshake material
// round-trips and rejects malformed input precisely. The RDMA data path itself needs a NIC (native/README.md).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Pool } from '../lib/pool.js';
import { VerbsTransport, encodeVerbsMaterial, parseVerbsMaterial, type VerbsMaterial } from '../lib/verbs-transport.js';

const sample: VerbsMaterial = {
  nics: [0, 1].map((i) => ({
    gid: Buffer.from(`fe80000000000000020c29fffe00000${i}`, 'hex'),
    lid: 7 + i,
    mtu: 5,
    rkey: 0xdeadbeef - i,
    base: 0n,
    qps: [0, 1, 2, 3].map((j) => ({ qpn: 0x100 + 16 * i + j, psn: 0xabcdef - j })),
  })),
};

function invalid(buf: Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseVerbsMaterial(buf),
    (err: Error & { code: string }) => err.code === 'INVALID_ARGUMENT' && pattern.test(err.message),
  );
}

describe('verbs transport', () => {
  const hasDevice = VerbsTransport.available().ok;

  test('available() and listDevices() report the host cleanly', { skip: hasDevice && 'an RDMA device exists here' }, async () => {
    const a = VerbsTransport.available();
    assert.equal(a.ok, false);
    assert.ok(!a.ok && /no RDMA devices found|dlopen libibverbs|no active port/.test(a.reason), JSON.stringify(a));
    assert.deepEqual(VerbsTransport.listDevices(), []);
    const pool = Pool.create({ sizeBytes: 1 << 20 });
    try {
      await assert.rejects(VerbsTransport.create({ pool }), (err: Error & { code: string }) => err.code === 'TRANSPORT_UNAVAILABLE');
      await assert.rejects(VerbsTransport.create({ pool, qpsPerPeer: 0 }), /options.qpsPerPeer/);
      await assert.rejects(VerbsTransport.create({ pool, nics: [] }), /options.nics/);
    } finally {
      pool.close();
    }
  });

  test('material round-trips exactly', () => {
    const buf = encodeVerbsMaterial(sample);
    assert.equal(buf.length, 6 + 1 + 2 * (32 + 4 * 8));
    assert.deepEqual(parseVerbsMaterial(buf), sample);
  });

  test('malformed material is rejected with the offending field', () => {
    const good = encodeVerbsMaterial(sample);
    const mutate = (at: number, value: number, width = 1): Buffer => {
      const b = Buffer.from(good);
      b.writeUIntLE(value, at, width);
      return b;
    };
    invalid(good.subarray(0, 3), /truncated at byte 0 reading magic/);
    invalid(mutate(0, 0x12345678, 4), /bad magic/);
    invalid(mutate(4, 2), /unsupported material version 2/);
    invalid(mutate(5, 1), /material is for transport tcp, this is verbs/);
    invalid(mutate(6, 0), /nic count 0 out of range/);
    invalid(mutate(6, 17), /nic count 17 out of range/);
    invalid(mutate(6, 3), /truncated .* reading nics\[2\]\.gid/);
    invalid(mutate(7 + 18, 6), /nics\[0\]\.mtu: expected an ibv_mtu in 1\.\.5, got 6/);
    invalid(mutate(7 + 31, 0), /nics\[0\]\.qp count 0 out of range/);
    invalid(mutate(7 + 31, 65), /nics\[0\]\.qp count 65 out of range/);
    invalid(mutate(7 + 32, 0, 4), /nics\[0\]\.qps\[0\]\.qpn: expected 1\.\.0xffffff, got 0/);
    invalid(mutate(7 + 36, 0x1000000, 4), /nics\[0\]\.qps\[0\]\.psn: expected a 24-bit value/);
    invalid(mutate(7 + 64 + 31, 3), /nics\[1\]\.qp count 3 differs from nics\[0\] \(4\)/);
    invalid(good.subarray(0, good.length - 1), /truncated .* reading nics\[1\]\.qps\[3\]\.psn/);
    invalid(Buffer.concat([good, Buffer.from([0])]), /1 unexpected trailing bytes/);
  });
});
