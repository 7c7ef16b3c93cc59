// The verbs transport's behaviour, written once and run against two devices: soft-RoCE (rxe) in the QEMU VM
// (test/rdma/verbs.rdma.ts, `npm run test:rdma`) and the fault-injecting stand-in for libibverbs
// (test/fake-verbs/verbs.fake.ts, part of `npm test`). Every transport here lives in this process; "A" serves,
// "B" reads, each on its own device, so the bytes cross the (emulated) wire.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';

import { Pool } from '../lib/pool.js';
import type { TransportEvent } from '../lib/transport.js';
import {
  VerbsTransport,
  encodeVerbsGrantKey,
  parseVerbsGrantKey,
  type VerbsTransportOptions,
} from '../lib/verbs-transport.js';
import { gid, rejectsWith, until } from './helpers.js';

export { rejectsWith, sleep, until } from './helpers.js';

export interface VerbsEnv {
  /** Device of the serving side and of the reading side. */
  a: string;
  b: string;
  /** Options every transport gets (e.g. a GID index). */
  options?: Partial<VerbsTransportOptions>;
}

export type Options = Partial<Omit<VerbsTransportOptions, 'pool'>>;

export interface Side {
  pool: Pool;
  t: VerbsTransport;
  events: TransportEvent[];
}

export async function side(
  nic: string | string[],
  env: VerbsEnv,
  opts: Options = {},
  poolBytes = 64 << 20,
): Promise<Side> {
  const pool = Pool.create({ sizeBytes: poolBytes });
  const events: TransportEvent[] = [];
  try {
    const t = await VerbsTransport.create({
      pool,
      nics: Array.isArray(nic) ? nic : [nic],
      qpsPerPeer: 2,
      onEvent: (e) => void events.push(e),
      ...env.options,
      ...opts,
    });
    return { pool, t, events };
  } catch (err) {
    pool.close();
    throw err;
  }
}

export async function closeAll(...sides: Side[]): Promise<void> {
  for (const s of sides) {
    await s.t.close();
    s.pool.close();
  }
}

/** `reader` connects to `server` (reader knows it as `serverId`, the server knows the reader as `readerId`). */
export async function connect(reader: Side, serverId: string, server: Side, readerId: string): Promise<void> {
  await reader.t.completeConnect(serverId, await server.t.acceptPeer(readerId, await reader.t.beginConnect(serverId)));
}

/** `n` pages of `size` bytes in `s`'s pool, filled with random bytes; returns offsets and the bytes. */
export function fill(s: Side, size: number, n: number): { offsets: number[]; data: Buffer[] } {
  const offsets = [...s.pool.allocMany(size, n)!];
  const data = offsets.map((o) => {
    const d = randomBytes(size);
    s.pool.write(o, d);
    return d;
  });
  return { offsets, data };
}

export function blank(s: Side, size: number, n: number): number[] {
  const offsets = [...s.pool.allocMany(size, n)!];
  for (const o of offsets) s.pool.write(o, Buffer.alloc(size, 0xee));
  return offsets;
}

const f64 = (xs: number[]) => new Float64Array(xs);
let nextGrant = 1;

/** Grants `reader` (named `readerId` by the server) the pages; returns the grant id and key. */
export async function grant(
  server: Side,
  readerId: string,
  offsets: number[],
  size: number,
  ttlMs = 60_000,
): Promise<{ id: string; key: Buffer }> {
  const id = gid(nextGrant++);
  const key = await server.t.addGrant(id, readerId, f64(offsets.flatMap((o) => [o, size])), Date.now() + ttlMs);
  return { id, key };
}

export async function read(
  reader: Side,
  serverId: string,
  g: { id: string; key: Buffer },
  remote: number[],
  local: number[],
  size: number,
  timeoutMs?: number,
) {
  return reader.t.readv(serverId, g.id, f64(remote), f64(local), f64(remote.map(() => size)), {
    grantKey: g.key,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

export function assertBytes(s: Side, local: number[], data: Buffer[], size: number): void {
  local.forEach((o, i) => assert.ok(s.pool.read(o, size).equals(data[i]!), `page ${i} differs`));
}

export function assertUntouched(s: Side, local: number[], size: number): void {
  for (const o of local) assert.ok(s.pool.read(o, size).equals(Buffer.alloc(size, 0xee)), `page at ${o} was written`);
}

/** The scenarios every device must pass. */
export function verbsSuite(env: VerbsEnv): void {
  describe(`verbs transport on ${env.a} ↔ ${env.b}`, () => {
    test('pages of 64 KiB, 256 KiB and 2 MiB arrive byte-exact through memory windows; release invalidates them all', async () => {
      const A = await side(env.a, env, {}, 128 << 20);
      const B = await side(env.b, env, {}, 128 << 20);
      try {
        await connect(B, 'A', A, 'B');
        for (const [size, n] of [
          [64 << 10, 64],
          [256 << 10, 64],
          [2 << 20, 12],
        ] as const) {
          const src = fill(A, size, n);
          const dst = blank(B, size, n);
          const g = await grant(A, 'B', src.offsets, size);
          const key = parseVerbsGrantKey(g.key);
          assert.equal(key.mode, 'windows');
          assert.ok(key.windows.length >= 2, 'windows spread over the reader QPs');
          assert.ok(
            key.windows.every((w) => w.length <= 1 << 20),
            'no window larger than windowBytes',
          );
          assert.notEqual(key.windows[0]!.rkey, A.t.nics()[0]!.poolRkey, 'the reader never gets the pool rkey');
          const r = await read(B, 'A', g, src.offsets, dst, size);
          assert.equal(r.bytes, size * n);
          assertBytes(B, dst, src.data, size);
          await A.t.removeGrant(g.id);
        }
        const c = A.t.counters();
        assert.equal(c.windowsInvalidated, c.windowsBound, 'every bound window was invalidated on release');
        assert.equal(c.liveGrants, 0);
        assert.equal(B.t.counters().batchesOk, 3);
        assert.equal(B.t.counters().readsInFlight, 0);
      } finally {
        await closeAll(A, B);
      }
    });

    test('two nodes pull from each other at once, and a reconnect of one direction leaves the other alone', async () => {
      const A = await side(env.a, env);
      const B = await side(env.b, env);
      try {
        await connect(B, 'A', A, 'B');
        await connect(A, 'B', B, 'A');
        const size = 128 << 10;
        for (let round = 0; round < 3; round++) {
          const fromA = fill(A, size, 24);
          const fromB = fill(B, size, 24);
          const intoB = blank(B, size, 24);
          const intoA = blank(A, size, 24);
          const [ga, gb] = await Promise.all([grant(A, 'B', fromA.offsets, size), grant(B, 'A', fromB.offsets, size)]);
          await Promise.all([
            read(B, 'A', ga, fromA.offsets, intoB, size),
            read(A, 'B', gb, fromB.offsets, intoA, size),
          ]);
          assertBytes(B, intoB, fromA.data, size);
          assertBytes(A, intoA, fromB.data, size);
          await Promise.all([A.t.removeGrant(ga.id), B.t.removeGrant(gb.id)]);
          if (round === 1) {
            A.t.dropPeer('B', 'reading'); // A re-handshakes its reads; B's reads from A must not notice
            await connect(A, 'B', B, 'A');
          }
          for (const p of [...fromA.offsets, ...intoA]) A.pool.free(p, size);
          for (const p of [...fromB.offsets, ...intoB]) B.pool.free(p, size);
        }
        assert.equal(B.t.counters().batchesFailed, 0);
        assert.equal(A.t.counters().batchesFailed, 0);
      } finally {
        await closeAll(A, B);
      }
    });

    test('eight readers fan in on one server, each byte-exact', async () => {
      const A = await side(env.a, env, {}, 96 << 20);
      const readers = await Promise.all(Array.from({ length: 8 }, () => side(env.b, env, { qpsPerPeer: 4 }, 16 << 20)));
      try {
        const size = 64 << 10;
        await Promise.all(readers.map((r, i) => connect(r, 'A', A, `R${i}`)));
        const srcs = readers.map(() => fill(A, size, 96));
        const dsts = readers.map((r) => blank(r, size, 96));
        const grants = await Promise.all(readers.map((_, i) => grant(A, `R${i}`, srcs[i]!.offsets, size)));
        await Promise.all(readers.map((r, i) => read(r, 'A', grants[i]!, srcs[i]!.offsets, dsts[i]!, size)));
        readers.forEach((r, i) => assertBytes(r, dsts[i]!, srcs[i]!.data, size));
      } finally {
        await closeAll(A, ...readers);
      }
    });

    test('a batch of many READs asks for few completions (one every quarter of the post depth), byte-exact', async () => {
      const A = await side(env.a, env, {}, 32 << 20);
      const B = await side(env.b, env, { qpsPerPeer: 1 }, 32 << 20);
      try {
        await connect(B, 'A', A, 'B');
        const size = 16 << 10;
        const n = 512;
        const src = fill(A, size, n);
        const dst = blank(B, size, n);
        const g = await grant(A, 'B', src.offsets, size);
        const before = B.t.counters();
        const r = await read(B, 'A', g, src.offsets, dst, size);
        assert.equal(r.bytes, n * size);
        assertBytes(B, dst, src.data, size);
        const c = B.t.counters();
        const wrs = c.workRequests - before.workRequests;
        const completions = c.completions - before.completions;
        assert.equal(wrs, n, 'one READ per page');
        // the default post depth is 32: a completion every 8 READs, plus the ends of chains and of the batch
        assert.ok(completions <= n / 4, `${completions} completions for ${wrs} READs`);
        assert.ok(completions >= n / 8, `${completions} completions for ${wrs} READs`);
        assert.equal(c.readsInFlight, 0);
      } finally {
        await closeAll(A, B);
      }
    });

    test('a CQ far smaller than the READs queued never overruns: posting waits for room', async () => {
      const A = await side(env.a, env, {}, 64 << 20);
      const B = await side(env.b, env, { cqDepth: 16, queueDepth: 64, qpsPerPeer: 8 }, 64 << 20);
      try {
        await connect(B, 'A', A, 'B');
        const size = 16 << 10;
        const src = fill(A, size, 1024);
        const dst = blank(B, size, 1024);
        const g = await grant(A, 'B', src.offsets, size);
        const r = await read(B, 'A', g, src.offsets, dst, size);
        assert.equal(r.bytes, 1024 * size);
        assertBytes(B, dst, src.data, size);
        assert.ok(B.t.nics()[0]!.cqDepth <= 64, 'the CQ stayed small');
        const c = B.t.counters();
        assert.ok(c.posts < c.workRequests, `work requests go in chains (${c.workRequests} WRs in ${c.posts} posts)`);
      } finally {
        await closeAll(A, B);
      }
    });

    test("the NIC refuses the pool rkey, a released window, another reader's window and a stale rkey after a rebind", async () => {
      const A = await side(env.a, env);
      const B = await side(env.b, env);
      const C = await side(env.b, env);
      try {
        const size = 64 << 10;
        await connect(B, 'A', A, 'B');
        await connect(C, 'A', A, 'C');
        const src = fill(A, size, 4);
        const dst = blank(B, size, 4);
        const g1 = await grant(A, 'B', src.offsets, size);
        const w1 = parseVerbsGrantKey(g1.key);

        // 1. the pool's own rkey (what a reader would use without windows)
        const poolKey = encodeVerbsGrantKey({
          mode: 'windows',
          windows: w1.windows.map((w) => ({ ...w, rkey: A.t.nics()[0]!.poolRkey })),
        });
        await rejectsWith(read(B, 'A', { id: g1.id, key: poolKey }, src.offsets, dst, size), 'GRANT_REFUSED', /failed/);
        assertUntouched(B, dst, size);
        await connect(B, 'A', A, 'B'); // an access error kills the RC connection: reconnect
        const g1b = await grant(A, 'B', src.offsets, size);

        // 2. another reader's QPs cannot use B's windows
        const dstC = blank(C, size, 4);
        await rejectsWith(read(C, 'A', g1b, src.offsets, dstC, size), 'GRANT_REFUSED');
        assertUntouched(C, dstC, size);

        // B's own key works
        await read(B, 'A', g1b, src.offsets, dst, size);
        assertBytes(B, dst, src.data, size);

        // 3. after release
        await A.t.removeGrant(g1b.id);
        const dst2 = blank(B, size, 4);
        await rejectsWith(read(B, 'A', g1b, src.offsets, dst2, size), 'GRANT_REFUSED');
        assertUntouched(B, dst2, size);
        await connect(B, 'A', A, 'B');

        // 4. the windows are reused with a new rkey: the old key is stale, the new one works
        const g2 = await grant(A, 'B', src.offsets, size);
        const keys2 = parseVerbsGrantKey(g2.key).windows.map((w) => w.rkey);
        const oldKeys = parseVerbsGrantKey(g1b.key).windows.map((w) => w.rkey);
        assert.ok(
          keys2.some((k) => oldKeys.some((o) => (o & ~0xff) === (k & ~0xff) && o !== k)),
          'a window was rebound under a new key',
        );
        const stale = encodeVerbsGrantKey({
          mode: 'windows',
          windows: parseVerbsGrantKey(g2.key).windows.map((w, i) => ({ ...w, rkey: oldKeys[i] ?? w.rkey })),
        });
        const dst3 = blank(B, size, 4);
        await rejectsWith(read(B, 'A', { id: g2.id, key: stale }, src.offsets, dst3, size), 'GRANT_REFUSED');
        await connect(B, 'A', A, 'B');
        const g3 = await grant(A, 'B', src.offsets, size);
        await read(B, 'A', g3, src.offsets, dst3, size);
        assertBytes(B, dst3, src.data, size);
      } finally {
        await closeAll(A, B, C);
      }
    });

    test('an expired grant is invalidated by the serving side on its own', async () => {
      const A = await side(env.a, env);
      const B = await side(env.b, env);
      try {
        const size = 64 << 10;
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 2);
        const g = await grant(A, 'B', src.offsets, size, 300);
        const bound = A.t.counters().windowsBound;
        await until("the grant's windows invalidated at expiry", () => A.t.counters().windowsInvalidated >= bound);
        const dst = blank(B, size, 2);
        await rejectsWith(read(B, 'A', g, src.offsets, dst, size), 'GRANT_REFUSED');
        assertUntouched(B, dst, size);
        await A.t.removeGrant(g.id); // settles at once: nothing left to invalidate
      } finally {
        await closeAll(A, B);
      }
    });

    test('descriptors outside the grant are refused before anything is posted; unknown peers fail fast', async () => {
      const A = await side(env.a, env);
      const B = await side(env.b, env);
      try {
        const size = 64 << 10;
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 3);
        const g = await grant(A, 'B', src.offsets.slice(0, 2), size);
        const dst = blank(B, size, 3);
        const before = B.t.counters().workRequests;
        await rejectsWith(
          read(B, 'A', g, src.offsets, dst, size),
          'GRANT_REFUSED',
          /remoteOffsets\[2\]: not covered by grant/,
        );
        assert.equal(B.t.counters().workRequests, before);
        await rejectsWith(read(B, 'nobody', g, src.offsets, dst, size), 'TRANSPORT_FAILED', /no connected queue pairs/);
        await assert.rejects(B.t.readv('A', g.id, f64([0]), f64([0]), f64([size])), /options.grantKey/);
        await read(B, 'A', g, src.offsets.slice(0, 2), dst.slice(0, 2), size); // the connection is still good
      } finally {
        await closeAll(A, B);
      }
    });

    test('close() with reads in flight settles them and frees everything', async () => {
      const A = await side(env.a, env, {}, 128 << 20);
      const B = await side(env.b, env, {}, 128 << 20);
      try {
        const size = 1 << 20;
        await connect(B, 'A', A, 'B');
        const src = fill(A, size, 64);
        const g = await grant(A, 'B', src.offsets, size);
        const p = read(B, 'A', g, src.offsets, blank(B, size, 64), size).then(
          () => 'done',
          (e: Error & { code: string }) => e.code,
        );
        await B.t.close();
        assert.match(await p, /^(done|TRANSPORT_FAILED)$/);
        await B.t.close(); // idempotent
      } finally {
        await closeAll(A, B);
      }
    });
  });
}
