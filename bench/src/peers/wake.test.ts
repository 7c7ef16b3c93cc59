// The engine wake floor's reference: a real Node loop process woken by the real C waker through the SDK's watcher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WakePeer } from './wake.js';

test('WakePeer: the loop sees the waker write its eventfd, once per write unless writes coalesced, and reports its CPU', async () => {
  using peer = new WakePeer();
  await using session = await peer.serve();
  // Runs one after another on one loop: each is answered for itself, never before its last write (the writer sleeps
  // to absolute deadlines, so that is count x gap after the request at the earliest; a run's late "done" line must
  // not end the next one early).
  const gapUs = 2000;
  for (const count of [40, 5, 20]) {
    const t0 = performance.now();
    const r = await session.run(count, gapUs);
    const elapsedMs = performance.now() - t0;
    assert.ok(elapsedMs >= (count * gapUs) / 1000, `answered after ${elapsedMs} ms, before its ${count} writes`);
    assert.ok(r.wakes >= 1 && r.wakes <= count, `${r.wakes} wakes for ${count} writes`);
    assert.ok(r.cpuSeconds > 0, `cpu ${r.cpuSeconds}`);
  }
});
