// The read pipeline on a fake transport: lanes, outcomes, verification of what landed, the bandwidth cap. No clocks
// are asserted on: a read that can not start before its deadline is 'late' whatever the machine's speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import {
  ReadPipeline,
  type ChunkOutcome,
  type ChunkRead,
  type ChunkSource,
  type PageVerifier,
} from './read-pipeline.js';

/** Every page matches (the native verifier's answer for intact pages). */
const intact: PageVerifier = async () => new Uint32Array(0);

function chunk(i: number, untilMs = Date.now() + 600_000): ChunkRead & { i: number } {
  return {
    i,
    peer: 'A',
    grantId: 'g7',
    key: Buffer.from('k'),
    remote: Float64Array.of(i * 10),
    local: Float64Array.of(i * 100),
    lengths: Float64Array.of(4096),
    pageBytes: 4096,
    checksums: Uint32Array.of(i, 0),
    untilMs,
  };
}

function source(chunks: (ChunkRead & { i: number })[]) {
  const settled: [number, ChunkOutcome][] = [];
  const src: ChunkSource<ChunkRead & { i: number }> = {
    next: async () => chunks.shift(),
    settle: (c, outcome) => void settled.push([c.i, outcome]),
  };
  return { src, settled };
}

test('every chunk is read once, at most `lanes` at a time, with its grant, key and deadline', async () => {
  let inFlight = 0;
  let most = 0;
  const reads: { peer: string; grant: string; remote: number[]; local: number[]; key: string; timeoutMs: number }[] =
    [];
  const pipeline = new ReadPipeline({
    maxBytesPerSec: 0,
    verify: intact,
    transport: {
      async readv(peer, grant, remote, local, _lengths, opts) {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        reads.push({
          peer,
          grant,
          remote: [...remote],
          local: [...local],
          key: opts!.grantKey!.toString(),
          timeoutMs: opts!.timeoutMs!,
        });
        return { bytes: 4096 };
      },
    },
  });
  const { src, settled } = source(Array.from({ length: 10 }, (_, i) => chunk(i)));
  await pipeline.run(src, 3);
  assert.equal(most, 3);
  assert.deepEqual(
    settled.map(([i]) => i).sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.ok(settled.every(([, o]) => o === 'landed'));
  assert.deepEqual(
    reads.map((r) => r.remote[0]).sort((a, b) => a! - b!),
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
  );
  assert.ok(
    reads.every(
      (r) => r.peer === 'A' && r.grant === 'g7' && r.key === 'k' && r.local[0] === r.remote[0]! * 10 && r.timeoutMs > 0,
    ),
  );
});

test('a failed readv is handed back with its error; a chunk past its deadline is late and never read', async () => {
  let reads = 0;
  const pipeline = new ReadPipeline({
    maxBytesPerSec: 0,
    verify: intact,
    transport: {
      async readv(_peer, _grant, remote) {
        reads++;
        if (remote[0] === 10) throw new KvError('TRANSPORT_FAILED', 'connection closed');
        return { bytes: 4096 };
      },
    },
  });
  const { src, settled } = source([chunk(0), chunk(1), chunk(2, Date.now() - 1)]);
  await pipeline.run(src, 1);
  assert.equal(reads, 2);
  assert.equal(settled[0]![1], 'landed');
  assert.deepEqual(settled[1]![1], { error: new KvError('TRANSPORT_FAILED', 'connection closed') });
  assert.equal(settled[2]![1], 'late');
});

test('with a bandwidth cap, a chunk whose turn comes after its deadline is late', async () => {
  let reads = 0;
  const pipeline = new ReadPipeline({
    maxBytesPerSec: 1,
    verify: intact,
    transport: { readv: async () => (reads++, { bytes: 4096 }) },
  });
  // 4096 bytes at 1 B/s: the first read books the link for over an hour, so the second can not start in time
  const { src, settled } = source([chunk(0), chunk(1)]);
  await pipeline.run(src, 1);
  assert.deepEqual(settled, [
    [0, 'landed'],
    [1, 'late'],
  ]);
  assert.equal(reads, 1);
});

test("landed pages are verified against the holder's checksums; a chunk with pages that differ says which", async () => {
  const verified: { local: number[]; pageBytes: number; checksums: number[] }[] = [];
  const pipeline = new ReadPipeline({
    maxBytesPerSec: 0,
    verify: async (local, pageBytes, checksums) => {
      verified.push({ local: [...local], pageBytes, checksums: [...checksums] });
      return local[0] === 100 ? Uint32Array.of(0) : new Uint32Array(0);
    },
    transport: {
      async readv(_peer, _grant, remote) {
        if (remote[0] === 20) throw new KvError('TRANSPORT_FAILED', 'connection closed');
        return { bytes: 4096 };
      },
    },
  });
  const { src, settled } = source([chunk(0), chunk(1), chunk(2)]);
  await pipeline.run(src, 1);
  assert.deepEqual(settled, [
    [0, 'landed'],
    [1, { mismatches: Uint32Array.of(0) }],
    [2, { error: new KvError('TRANSPORT_FAILED', 'connection closed') }],
  ]);
  // what landed was verified, each chunk against its own checksums; a failed read is never verified
  assert.deepEqual(verified, [
    { local: [0], pageBytes: 4096, checksums: [0, 0] },
    { local: [100], pageBytes: 4096, checksums: [1, 0] },
  ]);
});

test('a transport that checked the pages as they landed is taken at its word: nothing is verified again', async () => {
  const expects: { pageBytes: number; checksums: number[] }[] = [];
  let verified = 0;
  const pipeline = new ReadPipeline({
    maxBytesPerSec: 0,
    verify: async () => (verified++, new Uint32Array(0)),
    transport: {
      async readv(_peer, _grant, remote, _local, _lengths, opts) {
        expects.push({ pageBytes: opts!.expect!.pageBytes, checksums: [...opts!.expect!.checksums] });
        return { bytes: 4096, mismatches: remote[0] === 10 ? Uint32Array.of(0) : new Uint32Array(0) };
      },
    },
  });
  const { src, settled } = source([chunk(0), chunk(1)]);
  await pipeline.run(src, 1);
  assert.deepEqual(settled, [
    [0, 'landed'],
    [1, { mismatches: Uint32Array.of(0) }],
  ]);
  assert.equal(verified, 0);
  // every readv carries its chunk's page size and the holder's checksums
  assert.deepEqual(expects, [
    { pageBytes: 4096, checksums: [0, 0] },
    { pageBytes: 4096, checksums: [1, 0] },
  ]);
});
