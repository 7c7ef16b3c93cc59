import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { Pool } from '../lib/pool.js';
import { SsdFile, type SsdEngine } from '../lib/ssd-file.js';
import { pageChecksum } from '../lib/checksum.js';
import { rejectsWith, ssdTestDir } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const f64 = (xs: number[]): Float64Array => Float64Array.from(xs);

function sumsOf(bufs: Buffer[]): Uint32Array {
  const out = new Uint32Array(bufs.length * 2);
  bufs.forEach((b, i) => {
    const s = pageChecksum(b);
    out[2 * i] = Number(s & 0xffffffffn);
    out[2 * i + 1] = Number(s >> 32n);
  });
  return out;
}

for (const engine of ['io_uring', 'threads'] as SsdEngine[]) {
  test(`${engine}: pages written to the file read back byte for byte, more pages than the queue depth`, async () => {
    using dir = ssdTestDir();
    using pool = Pool.create({ sizeBytes: 64 * MiB, slabBytes: 2 * MiB });
    const file = SsdFile.open({ path: join(dir.path, 'ssd.0'), sizeBytes: 32 * MiB, engine, queueDepth: 8 });
    try {
      assert.equal(file.engine, engine);
      if (engine === 'threads') assert.match(file.fallbackReason ?? '', /threads/);
      const pageBytes = 64 * KiB;
      const n = 100;
      const src = pool.allocMany(pageBytes, n)!;
      const dst = pool.allocMany(pageBytes, n)!;
      const bytes = Array.from({ length: n }, () => randomBytes(pageBytes));
      bytes.forEach((b, i) => pool.write(src[i]!, b));
      const slots = f64(Array.from({ length: n }, (_, i) => (n - 1 - i) * pageBytes)); // out of order on purpose
      const lens = new Float64Array(n).fill(pageBytes);
      const w = await file.write(pool, src, slots, lens);
      assert.equal(w.bytes, n * pageBytes);
      assert.deepEqual(w.checksums, sumsOf(bytes));
      const r = await file.read(pool, dst, slots, lens, w.checksums);
      assert.equal(r.bytes, n * pageBytes);
      assert.deepEqual([...r.mismatches], []);
      for (let i = 0; i < n; i++) assert.ok(pool.read(dst[i]!, pageBytes).equals(bytes[i]!), `page ${i}`);
      const c = file.counters();
      assert.deepEqual([c.writes, c.reads, c.bytesWritten, c.errors, c.bounced], [n, n, n * pageBytes, 0, 0]);
    } finally {
      file.close();
    }
  });
}

test('io_uring refused by the kernel (forced): auto falls back to threads and says why; io_uring asked for fails', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: 2 * MiB });
  process.env.KVFABRIC_TEST_SSD_URING_REFUSED = '1'; // EPERM, as seccomp answers io_uring_setup
  try {
    const file = SsdFile.open({ path: join(dir.path, 'ssd.0'), sizeBytes: 4 * MiB });
    try {
      assert.equal(file.engine, 'threads');
      assert.equal(
        file.fallbackReason,
        'io_uring_queue_init: Operation not permitted (KVFABRIC_TEST_SSD_URING_REFUSED)',
      );
      const pageBytes = 64 * KiB;
      const src = pool.allocMany(pageBytes, 4)!;
      const dst = pool.allocMany(pageBytes, 4)!;
      const bytes = Array.from({ length: 4 }, () => randomBytes(pageBytes));
      bytes.forEach((b, i) => pool.write(src[i]!, b));
      const slots = f64([0, 1, 2, 3].map((i) => i * pageBytes));
      const lens = new Float64Array(4).fill(pageBytes);
      const w = await file.write(pool, src, slots, lens);
      const r = await file.read(pool, dst, slots, lens, w.checksums);
      assert.deepEqual([...r.mismatches], []);
      bytes.forEach((b, i) => assert.ok(pool.read(dst[i]!, pageBytes).equals(b), `page ${i}`));
    } finally {
      file.close();
    }
    process.env.KVFABRIC_TEST_SSD_URING_REFUSED = '38'; // ENOSYS: a kernel without io_uring
    assert.throws(
      () => SsdFile.open({ path: join(dir.path, 'ssd.1'), sizeBytes: 4 * MiB, engine: 'io_uring' }),
      // the kernel's own words for ENOSYS, as libc gives them
      new RegExp(`io_uring unavailable: io_uring_queue_init: ${getSystemErrorMap().get(-38)![1]}`, 'i'),
    );
  } finally {
    delete process.env.KVFABRIC_TEST_SSD_URING_REFUSED;
  }
});

test('a page that is not 4096-aligned goes through the bounce buffer and still reads back exactly', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: 2 * MiB });
  const file = SsdFile.open({ path: join(dir.path, 'ssd.0'), sizeBytes: 4 * MiB });
  try {
    const pageBytes = 10_000; // neither the length nor (the second page's) address is 4096-aligned
    const src = pool.allocMany(pageBytes, 2)!;
    const dst = pool.allocMany(pageBytes, 2)!;
    const bytes = [randomBytes(pageBytes), randomBytes(pageBytes)];
    bytes.forEach((b, i) => pool.write(src[i]!, b));
    const slots = f64([0, 3 * 4096]);
    const lens = f64([pageBytes, pageBytes]);
    const w = await file.write(pool, src, slots, lens);
    const r = await file.read(pool, dst, slots, lens, w.checksums);
    assert.deepEqual([...r.mismatches], []);
    bytes.forEach((b, i) => assert.ok(pool.read(dst[i]!, pageBytes).equals(b)));
    assert.equal(file.counters().bounced, 4);
  } finally {
    file.close();
  }
});

test('a read checks every page: bytes changed on disk and a wrong expected sum are both reported', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: 2 * MiB });
  const path = join(dir.path, 'ssd.0');
  const file = SsdFile.open({ path, sizeBytes: 4 * MiB });
  try {
    const pageBytes = 64 * KiB;
    const src = pool.allocMany(pageBytes, 3)!;
    const dst = pool.allocMany(pageBytes, 3)!;
    for (let i = 0; i < 3; i++) pool.write(src[i]!, randomBytes(pageBytes));
    const slots = f64([0, pageBytes, 2 * pageBytes]);
    const lens = new Float64Array(3).fill(pageBytes);
    const w = await file.write(pool, src, slots, lens);
    const fd = openSync(path, 'r+'); // page 1 rots on disk
    writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, pageBytes + 77);
    closeSync(fd);
    const expected = Uint32Array.from(w.checksums);
    expected[4] = expected[4]! ^ 1; // and page 2's recorded sum is wrong
    const r = await file.read(pool, dst, slots, lens, expected);
    assert.deepEqual([...r.mismatches], [1, 2]);
    assert.equal(file.counters().mismatches, 2);
    assert.ok(pool.read(dst[0]!, pageBytes).equals(pool.read(src[0]!, pageBytes)));
  } finally {
    file.close();
  }
});

test('a write given the sums of some pages hands those back unsummed and sums only the others', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: 2 * MiB });
  const file = SsdFile.open({ path: join(dir.path, 'ssd.0'), sizeBytes: 4 * MiB });
  try {
    const pageBytes = 64 * KiB;
    const bytes = [0, 1, 2].map(() => randomBytes(pageBytes));
    const src = pool.allocMany(pageBytes, 3)!;
    bytes.forEach((b, i) => pool.write(src[i]!, b));
    const slots = f64([0, pageBytes, 2 * pageBytes]);
    const lens = new Float64Array(3).fill(pageBytes);
    const real = sumsOf(bytes);
    // page 0's sum is known; page 2's "known" sum is deliberately not its own: a given sum is trusted, not checked
    const sums = Uint32Array.from(real);
    sums[4] = 7;
    sums[5] = 9;
    const known = Uint8Array.from([1, 0, 1]);
    const w = await file.write(pool, src, slots, lens, { sums, known });
    assert.deepEqual([...w.checksums], [real[0], real[1], real[2], real[3], 7, 9]);
    const dst = pool.allocMany(pageBytes, 3)!;
    const r = await file.read(pool, dst, slots, lens, w.checksums);
    assert.deepEqual([...r.mismatches], [2], 'the bytes on disk are the page, whatever sum the caller gave');
    bytes.forEach((b, i) => assert.ok(pool.read(dst[i]!, pageBytes).equals(b)));
    await rejectsWith(
      file.write(pool, src, slots, lens, { sums: new Uint32Array(2), known }),
      'INVALID_ARGUMENT',
      /knownSums/,
    );
    await rejectsWith(
      file.write(pool, src, slots, lens, { sums, known: new Uint8Array(2) }),
      'INVALID_ARGUMENT',
      /known: /,
    );
  } finally {
    file.close();
  }
});

test('an injected device error fails the batch with SSD_FAILED naming the file; the next batch works', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 8 * MiB, slabBytes: 2 * MiB });
  const path = join(dir.path, 'ssd.0');
  for (const engine of ['io_uring', 'threads'] as SsdEngine[]) {
    const file = SsdFile.open({ path, sizeBytes: 4 * MiB, engine });
    try {
      const page = pool.alloc(4096)!;
      file.injectFaults(1);
      await rejectsWith(
        file.write(pool, f64([page]), f64([0]), f64([4096])),
        'SSD_FAILED',
        /ssd\.0.*Input\/output error/,
      );
      assert.equal(file.counters().errors, 1);
      const ok = await file.write(pool, f64([page]), f64([0]), f64([4096]));
      assert.equal(ok.bytes, 4096);
      pool.free(page, 4096);
    } finally {
      file.close();
    }
  }
});

test('bad arguments are refused before any I/O, naming the field', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 4 * MiB, slabBytes: 2 * MiB });
  const file = SsdFile.open({ path: join(dir.path, 'ssd.0'), sizeBytes: 1 * MiB });
  try {
    const page = pool.alloc(4096)!;
    await rejectsWith(
      file.write(pool, f64([page]), f64([1 * MiB]), f64([4096])),
      'INVALID_ARGUMENT',
      /fileOffsets\[0\]/,
    );
    await rejectsWith(file.write(pool, f64([page]), f64([100]), f64([4096])), 'INVALID_ARGUMENT', /fileOffsets\[0\]/);
    await rejectsWith(file.write(pool, f64([8 * MiB]), f64([0]), f64([4096])), 'INVALID_ARGUMENT', /poolOffsets\[0\]/);
    await rejectsWith(
      file.read(pool, f64([page]), f64([0]), f64([4096]), new Uint32Array(1)),
      'INVALID_ARGUMENT',
      /expected/,
    );
    assert.equal(file.counters().writes + file.counters().reads, 0);
    assert.throws(() => SsdFile.open({ path: join(dir.path, 'x'), sizeBytes: 1000 }), /sizeBytes/);
  } finally {
    file.close();
  }
  await rejectsWith(file.write(pool, f64([0]), f64([0]), f64([4096])), 'SSD_FAILED', /after close/);
});

test('a file on tmpfs is refused with a message that says so', { skip: !existsSync('/dev/shm') }, () => {
  const path = `/dev/shm/kvf-ssd-test-${process.pid}`;
  assert.throws(
    () => SsdFile.open({ path, sizeBytes: 1 * MiB }),
    (err: Error & { code?: string }) => err.code === 'SSD_FAILED' && /tmpfs/.test(err.message),
  );
});

test('the file is sized to sizeBytes, and reopening it keeps what was written', async () => {
  using dir = ssdTestDir();
  using pool = Pool.create({ sizeBytes: 4 * MiB, slabBytes: 2 * MiB });
  const path = join(dir.path, 'ssd.0');
  const page = pool.alloc(8192)!;
  const bytes = randomBytes(8192);
  pool.write(page, bytes);
  const a = SsdFile.open({ path, sizeBytes: 2 * MiB });
  const w = await a.write(pool, f64([page]), f64([8192]), f64([8192]));
  a.close();
  assert.equal(statSync(path).size, 2 * MiB);
  const b = SsdFile.open({ path, sizeBytes: 2 * MiB });
  try {
    pool.write(page, Buffer.alloc(8192));
    const r = await b.read(pool, f64([page]), f64([8192]), f64([8192]), w.checksums);
    assert.deepEqual([...r.mismatches], []);
    assert.ok(pool.read(page, 8192).equals(bytes));
  } finally {
    b.close();
  }
});
