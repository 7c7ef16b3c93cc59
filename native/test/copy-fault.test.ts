// A region truncated by its owner while a copy runs: the worker takes a SIGBUS, the guard turns it into a failed
// batch (REGION_INVALID), and the process (here: the test runner itself) keeps running and copying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CopyEngine } from '../lib/copy-engine.js';
import { Pool } from '../lib/pool.js';
import { Region } from '../lib/region.js';

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;

/** A thread that shrinks the file to 0 and grows it back, over and over, until terminated. */
function truncator(path: string): Worker {
  const code = `
    const { openSync, ftruncateSync } = require('node:fs');
    const fd = openSync(${JSON.stringify(path)}, 'r+');
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (;;) { ftruncateSync(fd, 0); Atomics.wait(nap, 0, 0, 1); ftruncateSync(fd, ${SIZE}); Atomics.wait(nap, 0, 0, 1); }`;
  return new Worker(code, { eval: true });
}

test('a region truncated during a copy fails that batch with REGION_INVALID and the process keeps copying', async () => {
  const path = `/dev/shm/kvf-copy-fault-${process.pid}`;
  const fd = openSync(path, 'w+', 0o600);
  ftruncateSync(fd, SIZE);
  closeSync(fd);
  try {
    using region = Region.openPath(path, SIZE);
    using pool = Pool.create({ sizeBytes: SIZE, slabBytes: 8 * MiB });
    await using engine = new CopyEngine({ threads: 2 });
    const whole = [Float64Array.of(0), Float64Array.of(0), Float64Array.of(SIZE)] as const;
    const worker = truncator(path);
    const messages = new Set<string>();
    try {
      // Each batch either meets the shrunken file before it starts (refused by the pre-copy check) or during the
      // copy (the bus error); loop until the guard has seen at least one bus error. Bounded by count, not time.
      for (let i = 0; i < 20_000 && engine.counters().faults === 0; i++) {
        try {
          await engine.copy(region, pool, ...whole);
        } catch (err) {
          const e = err as Error & { code: string };
          assert.equal(e.code, 'REGION_INVALID', e.message);
          messages.add(e.message.replace(/\d+/g, 'N'));
        }
      }
    } finally {
      await worker.terminate();
    }
    assert.ok(engine.counters().faults >= 1, 'the truncation loop never hit a copy in flight');
    assert.ok(
      messages.has(
        "copy: bus error (SIGBUS) at src byte N of N: the memory's file shrank under the copy (an engine " +
          'truncated its region); the batch failed',
      ),
      [...messages].join('\n'),
    );
    // Still copying, byte for byte, once the file is whole again.
    const rw = openSync(path, 'r+');
    ftruncateSync(rw, SIZE);
    closeSync(rw);
    const data = randomBytes(SIZE);
    region.write(0, data);
    const before = engine.counters();
    assert.equal((await engine.copy(region, pool, ...whole)).bytes, SIZE);
    assert.ok(pool.read(0, SIZE).equals(data));
    assert.equal(engine.counters().bytesCopied - before.bytesCopied, SIZE);
    assert.equal(engine.counters().faults, before.faults);
  } finally {
    rmSync(path, { force: true });
  }
});
