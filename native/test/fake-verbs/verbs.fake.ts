// The verbs transport against the fault-injecting stand-in for libibverbs (README.md here): the shared scenarios,
// then what soft-RoCE cannot show — mlx5-like GID tables, error completions, async events, stalls, window range
// checks, uneven NIC counts, small device limits, devices without memory windows. Started by verbs-fake.test.ts
// in child processes (LD_LIBRARY_PATH must point at the fake before the process starts), one per device profile:
//   KVF_FAKE_PROFILE=mlx5    three mlx5-like devices, faults through $KVF_FAKE_VERBS_CONTROL
//   KVF_FAKE_PROFILE=small   tiny limits (4 outstanding READs, 64 CQEs, 32 WRs per QP, 64 KiB messages)
//   KVF_FAKE_PROFILE=nomw    no type-2 memory windows
//   KVF_FAKE_PROFILE=v1only  RoCE v1 GIDs only
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { VerbsTransport, encodeVerbsGrantKey, parseVerbsGrantKey } from '../../lib/verbs-transport.js';
import { Pool } from '../../lib/pool.js';
import {
  assertBytes,
  assertUntouched,
  blank,
  closeAll,
  connect,
  fill,
  grant,
  read,
  rejectsWith,
  side,
  until,
  verbsSuite,
  type VerbsEnv,
} from '../verbs-suite.js';

const profile = process.env.KVF_FAKE_PROFILE;
const control = process.env.KVF_FAKE_VERBS_CONTROL;

/** Sets the fake's faults (write-then-rename, so the change is seen whole). */
function faults(lines: string[]): void {
  assert.ok(control, 'KVF_FAKE_VERBS_CONTROL is set');
  writeFileSync(`${control}.tmp`, lines.join('\n') + '\n');
  renameSync(`${control}.tmp`, control);
}

function stats(): Record<string, number> {
  const text = readFileSync(`${control}.stats`, 'utf8');
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => l.split('='))
      .map(([k, v]) => [k!, Number(v)]),
  );
}

const env: VerbsEnv = { a: 'mlx5_0', b: 'mlx5_1' };
const size = 64 << 10;

if (profile === 'mlx5') {
  verbsSuite(env);

  describe('what only the stand-in can show', () => {
    test('an mlx5-like GID table: RoCE v1 and link-local entries come first, the IPv4 RoCE v2 entry is chosen', async () => {
      const dev = VerbsTransport.listDevices().find((d) => d.name === 'mlx5_0')!;
      assert.deepEqual(
        dev.ports[0]!.gids.map((g) => g.type),
        ['RoCE v1', 'RoCE v2', 'RoCE v1', 'RoCE v2'],
      );
      assert.equal(dev.ports[0]!.gidIndex, 3);
      assert.equal(dev.mwType2, true);
      const A = await side('mlx5_0', env);
      try {
        const nic = A.t.nics()[0]!;
        assert.equal(nic.gidIndex, 3);
        assert.equal(nic.gidType, 'RoCE v2');
        assert.equal(nic.gid, '00000000000000000000ffff0a580001');
        assert.equal(nic.rdAtomInit, 16);
      } finally {
        await closeAll(A);
      }
      await rejectsWith(side('mlx5_0', env, { gidIndex: 6 }), 'TRANSPORT_UNAVAILABLE', /GID index 6 is empty/);
    });

    test("the NIC checks a read against the window's own range (rxe does not)", async () => {
      const A = await side('mlx5_0', env);
      const B = await side('mlx5_1', env);
      try {
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 2);
        const g = await grant(A, 'B', src.offsets.slice(0, 1), size);
        const win = parseVerbsGrantKey(g.key).windows[0]!;
        // forge a key claiming the window also covers the next (ungranted) page: the NIC refuses
        const forged = encodeVerbsGrantKey({
          mode: 'windows',
          windows: [{ ...win, offset: Math.min(src.offsets[0]!, src.offsets[1]!), length: 4 * size }],
        });
        const dst = blank(B, size, 1);
        await rejectsWith(read(B, 'A', { id: g.id, key: forged }, [src.offsets[1]!], dst, size), 'GRANT_REFUSED');
        assertUntouched(B, dst, size);
        assert.ok((stats().reads_refused ?? 0) >= 1);
      } finally {
        await closeAll(A, B);
      }
    });

    for (const [fault, code, pattern] of [
      ['read_error=retry_exc', 'TRANSPORT_FAILED', /retry/i],
      ['read_error=rem_access', 'GRANT_REFUSED', /remote access error/i],
      ['qp_fatal=1', 'TRANSPORT_FAILED', /flushed|fatal|catastrophic/i],
    ] as const) {
      test(`${fault}: the batch fails ${code}, the connection is marked broken, and a new handshake reads again`, async () => {
        const A = await side('mlx5_0', env);
        const B = await side('mlx5_1', env);
        try {
          await connect(B, 'A', A, 'B');
          const src = fill(A, size, 8);
          const g = await grant(A, 'B', src.offsets, size);
          faults([fault, 'read_error_after=2', 'fault_device=mlx5_1']);
          const dst = blank(B, size, 8);
          await rejectsWith(read(B, 'A', g, src.offsets, dst, size), code, pattern);
          faults([]);
          await until('a broken-connection event', () =>
            B.events.some((e) => e.kind === 'broken' || e.kind === 'async'),
          );
          if (fault !== 'qp_fatal=1')
            assert.ok(
              B.events.some((e) => e.kind === 'broken' && /vendor_err/.test(e.message)),
              JSON.stringify(B.events),
            );
          else
            assert.ok(
              B.events.some((e) => e.kind === 'async' && /fatal|catastrophic/i.test(e.message)),
              JSON.stringify(B.events),
            );
          await rejectsWith(read(B, 'A', g, src.offsets, dst, size), 'TRANSPORT_FAILED', /broke.*reconnect/);
          await connect(B, 'A', A, 'B');
          const g2 = await grant(A, 'B', src.offsets, size);
          await read(B, 'A', g2, src.offsets, dst, size);
          assertBytes(B, dst, src.data, size);
        } finally {
          faults([]);
          await closeAll(A, B);
        }
      });
    }

    test('a stalled path: the batch ends with TRANSPORT_TIMEOUT while the grant is live, and no late byte lands', async () => {
      const A = await side('mlx5_0', env);
      const B = await side('mlx5_1', env);
      try {
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 4);
        const g = await grant(A, 'B', src.offsets, size, 120_000);
        faults(['stall=1']);
        const dst = blank(B, size, 4);
        await rejectsWith(read(B, 'A', g, src.offsets, dst, size, 300), 'TRANSPORT_TIMEOUT', /stalled/);
        assert.equal(A.t.counters().liveGrants, 1, 'the grant outlived the batch');
        faults([]); // the path comes back: nothing of the timed-out batch may land now
        await new Promise((r) => setTimeout(r, 200));
        assertUntouched(B, dst, size);
        assert.equal(B.t.counters().timeouts, 1);
      } finally {
        faults([]);
        await closeAll(A, B);
      }
    });

    test('device events: PORT_ERR is reported and reads go on; DEVICE_FATAL breaks every connection', async () => {
      const A = await side('mlx5_0', env);
      const B = await side('mlx5_1', env);
      try {
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 4);
        const dst = blank(B, size, 4);
        faults(['port_err=1', 'fault_device=mlx5_1']);
        await until('a PORT_ERR event', () => B.events.some((e) => e.kind === 'async' && /port/i.test(e.message)));
        faults([]);
        await read(B, 'A', await grant(A, 'B', src.offsets, size), src.offsets, dst, size);
        assertBytes(B, dst, src.data, size);
        faults(['device_fatal=1', 'fault_device=mlx5_1']);
        await until('a DEVICE_FATAL event', () =>
          B.events.some((e) => e.kind === 'async' && /fatal|catastrophic/i.test(e.message)),
        );
        faults([]);
        await rejectsWith(
          read(B, 'A', await grant(A, 'B', src.offsets, size), src.offsets, dst, size),
          'TRANSPORT_FAILED',
        );
      } finally {
        faults([]);
        await closeAll(A, B);
      }
    });

    test('two reading NICs against one serving NIC, and the reverse: every QP pair is one-to-one', async () => {
      for (const [readerNics, serverNics] of [
        [['mlx5_0', 'mlx5_1'], ['mlx5_2']],
        [['mlx5_2'], ['mlx5_0', 'mlx5_1']],
      ] as const) {
        const A = await side([...serverNics], env, {}, 32 << 20);
        const B = await side([...readerNics], env, { qpsPerPeer: 3 }, 32 << 20);
        try {
          await connect(B, 'A', A, 'B');
          const src = fill(A, size, 48);
          const dst = blank(B, size, 48);
          const g = await grant(A, 'B', src.offsets, size);
          assert.equal(
            new Set(parseVerbsGrantKey(g.key).windows.map((w) => w.qp)).size,
            3 * readerNics.length,
            'windows on every reader QP',
          );
          await read(B, 'A', g, src.offsets, dst, size);
          assertBytes(B, dst, src.data, size);
        } finally {
          await closeAll(A, B);
        }
      }
      assert.equal(stats().cq_overruns, 0);
    });
  });
} else if (profile === 'small') {
  // The shared scenarios on a device with tiny limits: depths, CQ size and message size clamp, nothing overruns.
  verbsSuite(env);
  test('limits were clamped to the device and no CQ overran', async () => {
    const A = await side('mlx5_0', env);
    try {
      const nic = A.t.nics()[0]!;
      assert.deepEqual([nic.qpDepth, nic.rdAtomInit, nic.maxMsg], [32, 4, 64 << 10]);
      assert.ok(nic.cqDepth <= 64);
    } finally {
      await closeAll(A);
    }
    assert.equal(stats().cq_overruns, 0);
    assert.ok((stats().max_reads_outstanding ?? 0) >= 4);
  });
} else if (profile === 'nomw') {
  test('without type-2 memory windows verbs is refused, unless the pool-wide rkey is allowed', async () => {
    assert.equal(VerbsTransport.available().ok, false);
    assert.match((VerbsTransport.available() as { reason: string }).reason, /lack type-2 memory windows/);
    await rejectsWith(
      side('mlx5_0', env),
      'TRANSPORT_UNAVAILABLE',
      /no type-2 memory windows.*--verbs-allow-pool-rkey/,
    );
    const A = await side('mlx5_0', env, { allowPoolRkey: true });
    const B = await side('mlx5_1', env, { allowPoolRkey: true });
    try {
      await connect(B, 'A', A, 'B');
      const src = fill(A, size, 8);
      const dst = blank(B, size, 8);
      const g = await grant(A, 'B', src.offsets, size);
      const key = parseVerbsGrantKey(g.key);
      assert.equal(key.mode, 'pool-rkey');
      assert.ok(key.windows.every((w) => w.rkey === A.t.nics()[0]!.poolRkey));
      await read(B, 'A', g, src.offsets, dst, size);
      assertBytes(B, dst, src.data, size);
      await A.t.removeGrant(g.id);
    } finally {
      await closeAll(A, B);
    }
  });
} else if (profile === 'v1only') {
  test('a port with RoCE v1 GIDs only is refused unless a GID index is given', async () => {
    assert.equal(VerbsTransport.available().ok, false);
    const pool = Pool.create({ sizeBytes: 1 << 20 });
    try {
      await rejectsWith(
        VerbsTransport.create({ pool }),
        'TRANSPORT_UNAVAILABLE',
        /no device has an active port 1 with a usable GID/,
      );
      await rejectsWith(VerbsTransport.create({ pool, nics: ['mlx5_0'] }), 'TRANSPORT_UNAVAILABLE', /no RoCE v2 GID/);
    } finally {
      pool.close();
    }
    const A = await side('mlx5_0', env, { gidIndex: 2 });
    const B = await side('mlx5_1', env, { gidIndex: 2 });
    try {
      assert.equal(A.t.nics()[0]!.gidType, 'RoCE v1');
      await connect(B, 'A', A, 'B');
      const src = fill(A, size, 4);
      const dst = blank(B, size, 4);
      await read(B, 'A', await grant(A, 'B', src.offsets, size), src.offsets, dst, size);
      assertBytes(B, dst, src.data, size);
    } finally {
      await closeAll(A, B);
    }
  });
} else {
  throw new Error(`KVF_FAKE_PROFILE=${profile}: expected mlx5, small, nomw or v1only (run through verbs-fake.test.ts)`);
}
