import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CopyEngine } from '../lib/copy-engine.js';
import { Pool } from '../lib/pool.js';
import { Region } from '../lib/region.js';
import { NativeError } from '../lib/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let counter = 0;
function makeShm(size: number): { name: string; path: string; [Symbol.dispose](): void } {
  const name = `/kvf-copy-test-${process.pid}-${counter++}`;
  const path = `/dev/shm${name}`;
  const fd = openSync(path, 'w+', 0o600);
  ftruncateSync(fd, size);
  closeSync(fd);
  return { name, path, [Symbol.dispose]: () => rmSync(path, { force: true }) };
}

async function assertRejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof NativeError, `expected NativeError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const f64 = (xs: number[]): Float64Array => Float64Array.from(xs);

test('gathers scattered layer slices into pages and scatters them back, byte for byte', async () => {
  const layers = 16;
  const slice = 4 * KiB; // 16 layers x 4 KiB = one 64 KiB page per block
  const blocks = 96;
  const regionBytes = blocks * layers * slice;
  using shmA = makeShm(regionBytes);
  using shmB = makeShm(regionBytes);
  using engineRegion = Region.openShm(shmA.name, regionBytes);
  using loadRegion = Region.openShm(shmB.name, regionBytes);
  using pool = Pool.create({ sizeBytes: 16 * MiB, slabBytes: MiB });
  await using engine = new CopyEngine({ threads: 3 });
  const data = randomBytes(regionBytes);
  engineRegion.write(0, data);

  // The engine lays out KV as [layer][block][slice]; a page holds [layer] for one block.
  const pages = pool.allocMany(layers * slice, blocks)!;
  const n = blocks * layers;
  const src = new Float64Array(n);
  const dst = new Float64Array(n);
  const len = new Float64Array(n).fill(slice);
  for (let b = 0; b < blocks; b++) {
    for (let l = 0; l < layers; l++) {
      src[b * layers + l] = (l * blocks + b) * slice;
      dst[b * layers + l] = pages[b]! + l * slice;
    }
  }
  const saved = await engine.copy(engineRegion, pool, src, dst, len);
  assert.deepEqual(saved, { bytes: regionBytes });
  for (let b = 0; b < blocks; b++) {
    const page = pool.read(pages[b]!, layers * slice);
    for (let l = 0; l < layers; l++) {
      const off = (l * blocks + b) * slice;
      assert.ok(
        page.subarray(l * slice, (l + 1) * slice).equals(data.subarray(off, off + slice)),
        `block ${b} layer ${l}`,
      );
    }
  }
  const loaded = await engine.copy(pool, loadRegion, dst, src, len);
  assert.equal(loaded.bytes, regionBytes);
  assert.ok(loadRegion.read(0, regionBytes).equals(data), 'scatter restores the exact layout');
  assert.deepEqual(engine.counters(), {
    bytesCopied: 2 * regionBytes,
    batches: 2,
    batchesInFlight: 0,
    errors: 0,
    faults: 0,
  });
});

test('large descriptors are split across threads mid-descriptor without losing a byte', async () => {
  using pool = Pool.create({ sizeBytes: 32 * MiB, slabBytes: 8 * MiB });
  await using engine = new CopyEngine({ threads: 4 });
  const data = randomBytes(11 * MiB + 12345);
  pool.write(0, data);
  // One 11 MiB descriptor, one odd-sized, one zero-length: all land at distinct destinations.
  const r = await engine.copy(
    pool,
    pool,
    f64([0, 0, 100]),
    f64([16 * MiB, 28 * MiB, 31 * MiB]),
    f64([data.length, 777, 0]),
  );
  assert.equal(r.bytes, data.length + 777);
  assert.ok(pool.read(16 * MiB, data.length).equals(data));
  assert.ok(pool.read(28 * MiB, 777).equals(data.subarray(0, 777)));
  for (const threads of [1, 2, 5]) {
    await using e = new CopyEngine({ threads });
    const sizes = [1, 300 * KiB, 3, 700 * KiB, 64 * KiB, 1];
    let s = 0;
    let d = 20 * MiB;
    const so: number[] = [];
    const dO: number[] = [];
    for (const len of sizes) {
      so.push(s);
      dO.push(d);
      s += len + 17;
      d += len;
    }
    pool.write(20 * MiB, Buffer.alloc(d - 20 * MiB));
    await e.copy(pool, pool, f64(so), f64(dO), f64(sizes));
    const expected = Buffer.concat(sizes.map((len, i) => data.subarray(so[i]!, so[i]! + len)));
    assert.ok(pool.read(20 * MiB, d - 20 * MiB).equals(expected), `threads=${threads}`);
  }
});

test('an out-of-bounds descriptor rejects the whole batch before any byte moves', async () => {
  using shm = makeShm(MiB);
  using region = Region.openShm(shm.name, MiB);
  using pool = Pool.create({ sizeBytes: MiB });
  await using engine = new CopyEngine({ threads: 2 });
  region.write(0, randomBytes(MiB));
  const good = [0, 64 * KiB];
  await assertRejects(
    engine.copy(region, pool, f64([...good, MiB - 10]), f64([0, 64 * KiB, 128 * KiB]), f64([64 * KiB, 64 * KiB, 11])),
    'INVALID_ARGUMENT',
    /^descriptor 2: src range \[1048566, \+11\) exceeds the region size 1048576$/,
  );
  await assertRejects(
    engine.copy(region, pool, f64([0, 0]), f64([0, MiB - 5]), f64([64 * KiB, 64 * KiB])),
    'INVALID_ARGUMENT',
    /^descriptor 1: dst range \[1048571, \+65536\) exceeds the pool size 1048576$/,
  );
  await assertRejects(
    engine.copy(region, pool, f64([0, 1.5]), f64([0, 0]), f64([1, 1])),
    'INVALID_ARGUMENT',
    /^descriptor 1: .*got 1\.5, 0, 1$/,
  );
  await assertRejects(
    engine.copy(region, pool, f64([0, -1]), f64([0, 0]), f64([1, 1])),
    'INVALID_ARGUMENT',
    /^descriptor 1: /,
  );
  await assertRejects(
    engine.copy(region, pool, f64([0]), f64([0]), f64([NaN])),
    'INVALID_ARGUMENT',
    /^descriptor 0: .*NaN/,
  );
  await assertRejects(
    engine.copy(pool, pool, f64([0]), f64([100]), f64([200])),
    'INVALID_ARGUMENT',
    /^descriptor 0: .*overlap/,
  );
  assert.ok(pool.read(0, MiB).equals(Buffer.alloc(MiB)), 'nothing was copied, not even the valid descriptors');
  assert.deepEqual(engine.counters(), { bytesCopied: 0, batches: 0, batchesInFlight: 0, errors: 6, faults: 0 });

  // Argument shape errors are refused by the wrapper (not counted as native errors).
  await assertRejects(
    engine.copy(region, pool, f64([0]), f64([0, 1]), f64([1])),
    'INVALID_ARGUMENT',
    /^dstOffsets: expected 1 elements like srcOffsets, got Float64Array\(2\)$/,
  );
  await assertRejects(
    engine.copy(region, pool, f64([0]), f64([0]), [1] as unknown as Float64Array),
    'INVALID_ARGUMENT',
    /^lengths: expected a Float64Array, got Array\(1\)$/,
  );
  await assertRejects(
    engine.copy({} as never, pool, f64([0]), f64([0]), f64([1])),
    'INVALID_ARGUMENT',
    /^src: expected a Pool or a Region, got Object$/,
  );
  assert.equal(engine.counters().errors, 6);
});

test('closed or shrunken memories are refused', async () => {
  using shm = makeShm(MiB);
  const region = Region.openShm(shm.name, MiB);
  using pool = Pool.create({ sizeBytes: MiB });
  await using engine = new CopyEngine({ threads: 2 });
  const fd = openSync(shm.path, 'r+');
  ftruncateSync(fd, 4096);
  await assertRejects(
    engine.copy(region, pool, f64([0]), f64([0]), f64([16])),
    'REGION_INVALID',
    /^src: region: shm object .* shrank to 4096 bytes/,
  );
  ftruncateSync(fd, MiB);
  closeSync(fd);
  assert.equal((await engine.copy(region, pool, f64([0]), f64([0]), f64([16]))).bytes, 16);
  region.close();
  await assertRejects(
    engine.copy(region, pool, f64([0]), f64([0]), f64([16])),
    'REGION_INVALID',
    /^src: region used after close\(\)$/,
  );
  const closedPool = Pool.create({ sizeBytes: MiB });
  closedPool.close();
  await assertRejects(
    engine.copy(pool, closedPool, f64([0]), f64([0]), f64([16])),
    'INTERNAL',
    /^dst: pool used after close\(\)$/,
  );
});

test('many concurrent batches all complete with exact counters', async () => {
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: MiB });
  await using engine = new CopyEngine({ threads: 2 });
  const data = randomBytes(4 * MiB);
  pool.write(0, data);
  const batches = 300;
  const results = await Promise.all(
    Array.from({ length: batches }, (_, i) => {
      const len = 1 + ((i * 7919) % (12 * KiB));
      return engine.copy(pool, pool, f64([i * 12 * KiB]), f64([4 * MiB + i * 12 * KiB]), f64([len]));
    }),
  );
  let total = 0;
  results.forEach((r, i) => {
    const len = 1 + ((i * 7919) % (12 * KiB));
    assert.equal(r.bytes, len);
    total += len;
    assert.ok(
      pool.read(4 * MiB + i * 12 * KiB, len).equals(data.subarray(i * 12 * KiB, i * 12 * KiB + len)),
      `batch ${i}`,
    );
  });
  assert.deepEqual(await engine.copy(pool, pool, f64([]), f64([]), f64([])), { bytes: 0 });
  assert.deepEqual(engine.counters(), {
    bytesCopied: total,
    batches: batches + 1,
    batchesInFlight: 0,
    errors: 0,
    faults: 0,
  });
});

test('close() with batches queued lets them all finish; later copies throw; close is idempotent', async () => {
  using pool = Pool.create({ sizeBytes: 80 * MiB, slabBytes: 8 * MiB });
  const engine = new CopyEngine({ threads: 2 });
  const data = randomBytes(24 * MiB);
  pool.write(0, data);
  // 48 batches (36 MiB of work): most are still queued when close() is called.
  const batches = Array.from({ length: 48 }, (_, i) =>
    i < 24
      ? engine.copy(pool, pool, f64([i * MiB]), f64([32 * MiB + i * MiB]), f64([MiB]))
      : engine.copy(pool, pool, f64([(i - 24) * MiB]), f64([56 * MiB + (i - 24) * (MiB / 2)]), f64([MiB / 2])),
  );
  engine.close();
  engine.close();
  assert.equal(engine.closed, true);
  const results = await Promise.all(batches);
  assert.deepEqual(
    results.map((r) => r.bytes),
    Array.from({ length: 48 }, (_, i) => (i < 24 ? MiB : MiB / 2)),
  );
  assert.ok(pool.read(32 * MiB, 24 * MiB).equals(data));
  for (let j = 0; j < 24; j++) {
    assert.ok(
      pool.read(56 * MiB + j * (MiB / 2), MiB / 2).equals(data.subarray(j * MiB, j * MiB + MiB / 2)),
      `batch ${24 + j}`,
    );
  }
  await assertRejects(engine.copy(pool, pool, f64([0]), f64([32 * MiB]), f64([1])), 'INTERNAL', /after close/);
  assert.deepEqual(engine.counters(), {
    bytesCopied: 24 * MiB + 12 * MiB,
    batches: 48,
    batchesInFlight: 0,
    errors: 0,
    faults: 0,
  });

  // asyncDispose closes and also waits for the promises of batches submitted before it.
  const other = new CopyEngine({ threads: 1 });
  let settled = 0;
  for (let i = 0; i < 8; i++)
    void other.copy(pool, pool, f64([i * MiB]), f64([32 * MiB + i * MiB]), f64([MiB])).then(() => settled++);
  await other[Symbol.asyncDispose]();
  assert.equal(other.closed, true);
  assert.deepEqual(other.counters(), { bytesCopied: 8 * MiB, batches: 8, batchesInFlight: 0, errors: 0, faults: 0 });
  await Promise.resolve(); // the test's own .then callbacks run one microtask after the batch promises
  assert.equal(settled, 8);
});

test('closing a pool or region under an in-flight copy defers the unmap until the copy is done', async () => {
  using shm = makeShm(32 * MiB);
  using region = Region.openShm(shm.name, 32 * MiB);
  const pool = Pool.create({ sizeBytes: 32 * MiB, slabBytes: 8 * MiB });
  await using engine = new CopyEngine({ threads: 2 });
  const data = randomBytes(32 * MiB);
  pool.write(0, data);
  const copy = engine.copy(pool, region, f64([0, 16 * MiB]), f64([0, 16 * MiB]), f64([16 * MiB, 16 * MiB]));
  pool.close(); // the batch holds its own reference to the arena
  assert.throws(() => pool.read(0, 1), /after close/);
  assert.equal((await copy).bytes, 32 * MiB);
  assert.ok(region.read(0, 32 * MiB).equals(data));

  const src = Region.openShm(shm.name, 32 * MiB);
  using dstPool = Pool.create({ sizeBytes: 32 * MiB, slabBytes: 8 * MiB });
  const back = engine.copy(src, dstPool, f64([0]), f64([0]), f64([32 * MiB]));
  src.close();
  assert.equal((await back).bytes, 32 * MiB);
  assert.ok(dstPool.read(0, 32 * MiB).equals(data));
});

test('an engine left open does not keep the process alive, and exit is clean', () => {
  const script = `
    import { CopyEngine } from ${JSON.stringify(fileURLToPath(new URL('../lib/copy-engine.ts', import.meta.url)))};
    import { Pool } from ${JSON.stringify(fileURLToPath(new URL('../lib/pool.ts', import.meta.url)))};
    const pool = Pool.create({ sizeBytes: 4 * 1024 * 1024 });
    const idle = new CopyEngine({ threads: 3 });
    const busy = new CopyEngine({ threads: 2 });
    const r = await busy.copy(pool, pool, Float64Array.of(0), Float64Array.of(2 * 1024 * 1024), Float64Array.of(1024 * 1024));
    // A batch still in flight at the end keeps the loop alive until it resolves.
    busy.copy(pool, pool, Float64Array.of(0), Float64Array.of(2 * 1024 * 1024), Float64Array.of(2 * 1024 * 1024)).then((x) => console.log('late', x.bytes));
    console.log('copied', r.bytes, idle.threads);
  `;
  const child = spawnSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout, 'copied 1048576 3\nlate 2097152\n');
});

test('copies of every length around the streaming threshold and line size land byte-exact at any alignment', async () => {
  using shm = makeShm(4 * MiB);
  using region = Region.openShm(shm.name, 4 * MiB);
  using pool = Pool.create({ sizeBytes: 4 * MiB });
  await using engine = new CopyEngine({ threads: 2 });
  assert.match(CopyEngine.storeKernel, /^(avx512|sse2|memcpy)$/);
  const data = randomBytes(4 * MiB);
  region.write(0, data);
  // lengths below, at and above the 4 KiB streaming threshold, not multiples of 64; destinations at every offset
  // within a cache line and sources at others, so heads, streamed lines and tails all occur
  const lengths = [1, 63, 4095, 4096, 4097, 4096 + 63, 16 * KiB + 1, 256 * KiB - 7, 300_001];
  const src: number[] = [];
  const dst: number[] = [];
  let at = 0;
  lengths.forEach((len, i) => {
    src.push(17 * i + 3 + 32 * KiB * i);
    dst.push(at + ((i * 13) % 64));
    at += len + 128;
  });
  pool.write(0, Buffer.alloc(at));
  const res = await engine.copy(region, pool, f64(src), f64(dst), f64(lengths));
  assert.equal(
    res.bytes,
    lengths.reduce((a, b) => a + b, 0),
  );
  lengths.forEach((len, i) => {
    const got = pool.read(dst[i]!, len);
    assert.ok(got.equals(data.subarray(src[i]!, src[i]! + len)), `copy ${i} (${len} bytes) landed intact`);
    // nothing beyond either end was touched
    assert.equal(pool.read(dst[i]! + len, 1)[0], 0, `the byte after copy ${i} is untouched`);
    if (dst[i]! % 64 !== 0) assert.equal(pool.read(dst[i]! - 1, 1)[0], 0, `the byte before copy ${i} is untouched`);
  });
});
