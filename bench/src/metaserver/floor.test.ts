// The metaserver bench's unary floor: a real forked server answering the metaserver's own QueryPrefix over its wire
// codec, queried by the real client, and its pause log read over IPC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient } from '@kvfabric/client';
import { HASH_LEN, NAMESPACE, chainHashes } from './data.js';
import { FloorServer } from './floor.js';

test('FloorServer: answers unary QueryPrefix with its fixed two-node answer and lists its GC pauses', async () => {
  // A 1 MiB young generation: the calls below leave several times that much garbage (tens of KB each), so the
  // server scavenges while they run, however fast the host is.
  await using floor = await FloorServer.start(['--max-semi-space-size=1']);
  const client = new MetaserverClient(floor.addr, { deadlineMs: 30_000 });
  try {
    const since = Date.now();
    for (let c = 0; c < 300; c++) {
      const res = await client.queryPrefix(NAMESPACE, { packed: chainHashes(c), hashLen: HASH_LEN });
      assert.deepEqual(
        res.nodes.map((n) => [n.nodeId, n.prefixLen]),
        [
          ['bench-node-0', 64],
          ['bench-node-1', 32],
        ],
      );
    }
    const pauses = await floor.pauses(since, Date.now() + 1);
    assert.ok(pauses.length > 0, 'no collector pause logged over 300 calls');
    for (const p of pauses) assert.ok(p.atMs >= since && p.ms >= 0 && typeof p.kind === 'string', JSON.stringify(p));
  } finally {
    client.close();
  }
});
