// The verbs transport on soft-RoCE: two rxe devices on the two ends of a veth pair inside the project's QEMU VM
// (`npm run test:rdma`, scripts/rdma-vm.sh). The shared scenarios (test/verbs-suite.ts), then what only a real
// kernel device shows here: a path that goes dark mid-read.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';

import { VerbsTransport } from '../../lib/verbs-transport.js';
import {
  assertUntouched,
  blank,
  closeAll,
  connect,
  fill,
  grant,
  read,
  rejectsWith,
  sleep,
  side,
  verbsSuite,
  type VerbsEnv,
} from '../verbs-suite.js';

const a = process.env.KVF_RDMA_A_DEV;
const b = process.env.KVF_RDMA_B_DEV;
if (!a || !b)
  throw new Error('these tests need the RDMA VM: run `npm run test:rdma` (KVF_RDMA_A_DEV/KVF_RDMA_B_DEV unset)');
// rxe under QEMU's emulation answers a READ in tens of milliseconds when eight readers queue at once; a 1 s ACK
// timeout (exponent 18) keeps the QPs' own retries from giving up on a path that is only slow.
const env: VerbsEnv = { a, b, options: { ackTimeout: 18 } };

describe('rxe devices', () => {
  test('both devices are active with a RoCE v2 GID and type-2 memory windows', () => {
    const devs = VerbsTransport.listDevices();
    for (const name of [a, b]) {
      const d = devs.find((x) => x.name === name);
      assert.ok(d, `${name} listed`);
      assert.equal(d.mwType2, true);
      assert.equal(d.ports[0]!.state, 'active');
      const chosen = d.ports[0]!.gids.find((g) => g.index === d.ports[0]!.gidIndex);
      assert.equal(chosen?.type, 'RoCE v2');
      assert.match(chosen!.gid, /^00000000000000000000ffff/, 'the IPv4-mapped entry');
    }
  });
});

verbsSuite(env);

describe('rxe: a stalled path', () => {
  // Takes the serving device's netdev down for a moment: in the VM that is the veth end kvfa; on a real host only
  // when KVF_RDMA_A_NETDEV names a link that may go down.
  const netdev = process.env.KVF_RDMA_A_NETDEV ?? (process.env.KVF_IN_VM === '1' ? 'kvfa' : undefined);
  test(
    'the serving link goes down mid-read: TRANSPORT_TIMEOUT before the grant expires, and no late byte lands',
    { skip: !netdev && "set KVF_RDMA_A_NETDEV to the serving device's netdev to take it down" },
    async () => {
      // Long ACK timeout on the reader (4.3 s a try): the QP's own retries would take half a minute; the batch
      // deadline must end the read first.
      const A = await side(a, env);
      const B = await side(b, env, { ackTimeout: 20 });
      try {
        const size = 256 << 10;
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 32);
        const g = await grant(A, 'B', src.offsets, size, 300_000);
        const dst = blank(B, size, 32);
        execFileSync('ip', ['link', 'set', netdev!, 'down']);
        try {
          await rejectsWith(read(B, 'A', g, src.offsets, dst, size, 1500), 'TRANSPORT_TIMEOUT');
        } finally {
          execFileSync('ip', ['link', 'set', netdev!, 'up']);
        }
        assert.equal(A.t.counters().liveGrants, 1, 'the grant is still live');
        await sleep(3000); // the link is back: a READ still in the NIC would land now
        assertUntouched(B, dst, size);
        assert.equal(B.t.counters().timeouts >= 1, true);
      } finally {
        await closeAll(A, B);
      }
    },
  );
});
