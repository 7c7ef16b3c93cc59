// A tcp readv that carries the holder's checksums: each page is summed as it lands, on the receiving thread, and
// the read answers with the pages whose bytes differ (the same XXH3-64 as pageChecksum and the copy engine's verify).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';

import { pageChecksum } from '../lib/checksum.js';
import { CopyEngine } from '../lib/copy-engine.js';
import { gid } from './helpers.js';
import { pair } from './tcp-pair.js';

const f64 = (xs: ArrayLike<number>): Float64Array => Float64Array.from(xs);

/** (low, high) of each page's checksum, as the holder hands them out with a grant. */
function sumsOf(pages: Buffer[]): Uint32Array {
  const out = new Uint32Array(2 * pages.length);
  pages.forEach((page, i) => {
    const s = pageChecksum(page);
    out[2 * i] = Number(s & 0xffffffffn);
    out[2 * i + 1] = Number(s >> 32n);
  });
  return out;
}

describe('tcp readv checking pages as they land', () => {
  for (const [label, PAGE, count] of [
    ['64 KiB pages, runs merged', 65536, 48],
    ['2 MiB pages, striped over the connections', 2 << 20, 6],
    ['odd-sized pages', 12_345, 40],
  ] as const) {
    test(`${label}: every page matches, a changed page is named, sums equal the copy engine's`, async () => {
      const p = await pair({ conns: 4, poolBytes: 64 << 20 });
      await using engine = new CopyEngine({ threads: 2 });
      try {
        const remote = p.pa.allocMany(PAGE, count)!;
        const local = p.pb.allocMany(PAGE, count)!;
        const pages = Array.from({ length: count }, () => randomBytes(PAGE));
        pages.forEach((page, i) => p.pa.write(remote[i]!, page));
        p.a.addGrant(gid(1), 'B', f64([...remote].flatMap((r) => [r, PAGE])), Date.now() + 60_000);
        const args = [f64(remote), f64(local), f64(remote.map(() => PAGE))] as const;

        const sums = sumsOf(pages);
        const ok = await p.b.readv('A', gid(1), ...args, { expect: { pageBytes: PAGE, checksums: sums } });
        assert.deepEqual(ok, { bytes: count * PAGE, mismatches: new Uint32Array(0) });
        pages.forEach((page, i) => assert.ok(p.pb.read(local[i]!, PAGE).equals(page), `page ${i} landed`));
        const verified = await engine.verify(p.pb, f64(local), PAGE, sums);
        assert.deepEqual(verified.mismatches, new Uint32Array(0), 'the copy engine agrees');

        // the holder's bytes of two pages change after it summed them: exactly those two are named, ascending
        const bad = [count - 1, 1];
        for (const i of bad) p.pa.write(remote[i]! + (PAGE >> 1), Buffer.from([pages[i]![PAGE >> 1]! ^ 0xff]));
        const changed = await p.b.readv('A', gid(1), ...args, { expect: { pageBytes: PAGE, checksums: sums } });
        assert.deepEqual(changed, { bytes: count * PAGE, mismatches: new Uint32Array([1, count - 1]) });
        const again = await engine.verify(p.pb, f64(local), PAGE, sums);
        assert.deepEqual(again.mismatches, new Uint32Array([1, count - 1]), 'the copy engine names the same pages');

        // without checksums the read answers with its bytes only, as before
        assert.deepEqual(await p.b.readv('A', gid(1), ...args), { bytes: count * PAGE });
      } finally {
        await p.close();
      }
    });
  }

  test('checksums that do not fit the descriptors are refused with the field named, and nothing is read', async () => {
    const p = await pair({ conns: 2 });
    try {
      const PAGE = 4096;
      const remote = p.pa.allocMany(PAGE, 2)!;
      const local = p.pb.allocMany(PAGE, 2)!;
      p.pa.write(remote[0]!, randomBytes(2 * PAGE));
      p.pb.write(local[0]!, Buffer.alloc(2 * PAGE));
      p.a.addGrant(gid(2), 'B', f64([remote[0]!, 2 * PAGE]), Date.now() + 60_000);
      const args = [f64(remote), f64(local), f64([PAGE, PAGE])] as const;
      const refused = (expect: unknown, pattern: RegExp) =>
        assert.rejects(
          p.b.readv('A', gid(2), ...args, { expect } as never),
          (err: Error & { code: string }) => err.code === 'INVALID_ARGUMENT' && pattern.test(err.message),
        );
      await refused({ pageBytes: PAGE, checksums: new Uint32Array(2) }, /options\.expect\.checksums.*4 elements/);
      await refused({ pageBytes: PAGE, checksums: [0, 0, 0, 0] }, /options\.expect\.checksums/);
      await refused({ pageBytes: 2 * PAGE, checksums: new Uint32Array(4) }, /options\.expect\.pageBytes: descriptor 0/);
      await refused({ pageBytes: 0, checksums: new Uint32Array(4) }, /options\.expect\.pageBytes/);
      await refused(null, /options\.expect/);
      assert.ok(p.pb.read(local[0]!, 2 * PAGE).equals(Buffer.alloc(2 * PAGE)), 'nothing was written');
      assert.equal(p.b.counters().readsInFlight, 0);
    } finally {
      await p.close();
    }
  });
});
