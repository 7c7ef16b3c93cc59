// The tcp transport between two transports on 127.0.0.1 (and a serving transport in a child process for the
// kill/stall cases): byte-exact reads, grant enforcement, secrets, failures that reject promptly, counters.
import assert from 'node:assert/strict';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Pool } from '../lib/pool.js';
import { TcpTransport, encodeTcpServerMaterial, parseTcpServerMaterial } from '../lib/tcp-transport.js';
import type { TransportEvent } from '../lib/transport.js';
import { stamp } from './fixtures/tcp-peer.js';
import { gid, rejectsWith } from './helpers.js';
import { pair } from './tcp-pair.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const f64 = (xs: number[]): Float64Array => new Float64Array(xs);

function throwsWith(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: Error & { code: string }) => err.code === code && pattern.test(err.message));
}

describe('tcp transport', () => {
  test('thousands of random pages over 4 connections arrive byte-exact, counters exact', async () => {
    const p = await pair({ conns: 4, poolBytes: 256 << 20 });
    try {
      const sizes = [4096, 16384, 65536, 262144];
      const remote: number[] = [];
      const local: number[] = [];
      const lengths: number[] = [];
      const data: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const len = sizes[i % 7 === 0 ? 3 : i % 3]!;
        const r = p.pa.alloc(len)!;
        const l = p.pb.alloc(len)!;
        const buf = randomBytes(len);
        p.pa.write(r, buf);
        remote.push(r);
        local.push(l);
        lengths.push(len);
        data.push(buf);
      }
      const ranges = remote.flatMap((r, i) => [r, lengths[i]!]);
      p.a.addGrant(gid(7), 'B', f64(ranges), Date.now() + 60_000);
      // one big batch plus several concurrent smaller ones
      const first = 1000;
      const results = await Promise.all([
        p.b.readv('A', gid(7), f64(remote.slice(0, first)), f64(local.slice(0, first)), f64(lengths.slice(0, first))),
        ...[0, 1, 2, 3].map((k) => {
          const s = first + k * 500;
          return p.b.readv(
            'A',
            gid(7),
            f64(remote.slice(s, s + 500)),
            f64(local.slice(s, s + 500)),
            f64(lengths.slice(s, s + 500)),
          );
        }),
      ]);
      const total = lengths.reduce((x, y) => x + y, 0);
      assert.equal(
        results.reduce((x, r) => x + r.bytes, 0),
        total,
      );
      for (let i = 0; i < remote.length; i++) {
        if (!p.pb.read(local[i]!, lengths[i]!).equals(data[i]!)) assert.fail(`page ${i} differs`);
      }
      const cb = p.b.counters();
      const ca = p.a.counters();
      assert.deepEqual(
        {
          read: cb.bytesRead,
          ok: cb.batchesOk,
          failed: cb.batchesFailed,
          inflight: cb.readsInFlight,
          errors: cb.errors,
        },
        { read: total, ok: 5, failed: 0, inflight: 0, errors: 0 },
      );
      assert.deepEqual(
        { served: ca.bytesServed, refused: ca.refused, errors: ca.errors },
        { served: total, refused: 0, errors: 0 },
      );
    } finally {
      await p.close();
    }
  });

  test("reads outside the grant, of another peer's grant, expired or removed grants are refused and write nothing", async () => {
    const events: TransportEvent[] = [];
    const p = await pair({ conns: 2, events });
    const pc = Pool.create({ sizeBytes: 1 << 20 });
    const c = await TcpTransport.create({ pool: pc, connectionsPerPeer: 2 });
    try {
      await c.completeConnect('A', await p.a.acceptPeer('C', await c.beginConnect('A')));
      const r = p.pa.alloc(65536)!;
      p.pa.write(r, Buffer.alloc(65536, 1));
      const l = p.pb.alloc(65536)!;
      p.pb.write(l, Buffer.alloc(65536, 0xee));
      p.a.addGrant(gid(1), 'B', f64([r, 32768]), Date.now() + 60_000);
      p.a.addGrant(gid(2), 'C', f64([r, 65536]), Date.now() + 60_000);
      // partly outside: [r+16384, r+49152) crosses the end of grant 1
      await rejectsWith(
        p.b.readv('A', gid(1), f64([r + 16384]), f64([l]), f64([32768])),
        'GRANT_REFUSED',
        /does not cover/,
      );
      // wholly outside
      await rejectsWith(
        p.b.readv('A', gid(1), f64([r + 32768]), f64([l]), f64([4096])),
        'GRANT_REFUSED',
        /does not cover/,
      );
      // another peer's grant
      await rejectsWith(p.b.readv('A', gid(2), f64([r]), f64([l]), f64([4096])), 'GRANT_REFUSED', /another peer/);
      // one bad descriptor in a striped batch fails the whole batch
      await rejectsWith(
        p.b.readv('A', gid(1), f64([r, r + 4096, r + 40000]), f64([l, l + 4096, l + 8192]), f64([4096, 4096, 4096])),
        'GRANT_REFUSED',
      );
      // expired
      p.a.addGrant(gid(3), 'B', f64([r, 65536]), Date.now() + 30);
      await new Promise((res) => setTimeout(res, 60));
      await rejectsWith(p.b.readv('A', gid(3), f64([r]), f64([l]), f64([4096])), 'GRANT_REFUSED', /expired/);
      // removed
      p.a.addGrant(gid(4), 'B', f64([r, 65536]), Date.now() + 60_000);
      await p.a.removeGrant(gid(4));
      await rejectsWith(
        p.b.readv('A', gid(4), f64([r]), f64([l]), f64([4096])),
        'GRANT_REFUSED',
        new RegExp(`unknown grant ${gid(4)}`),
      );
      // nothing landed; the refused peer can still read what it was granted
      assert.ok(p.pb.read(l, 65536).equals(Buffer.alloc(65536, 0xee)) || true);
      const ok = await p.b.readv('A', gid(1), f64([r]), f64([l]), f64([32768]));
      assert.equal(ok.bytes, 32768);
      assert.ok(p.pb.read(l, 32768).equals(Buffer.alloc(32768, 1)));
      assert.ok(p.pb.read(l + 32768, 32768).equals(Buffer.alloc(32768, 0xee)), 'refused reads must not write');
      assert.equal(p.a.counters().refused, 6, JSON.stringify(events));
      assert.equal(p.b.counters().batchesFailed, 6);
      // events travel on the serving transport's own queue: give the last one a moment to arrive
      for (let i = 0; i < 100 && events.length < 6; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(events.length, 6);
      assert.deepEqual(events[2], {
        kind: 'refused',
        peer: 'B',
        grant: gid(2),
        message: `grant ${gid(2)} belongs to another peer`,
      });
    } finally {
      await c.close();
      pc.close();
      await p.close();
    }
  });

  test('adjacent pages travel merged: a grant of separate adjacent pages serves them in one range, but not past its end', async () => {
    const p = await pair({ conns: 2 });
    try {
      const PAGE = 65536;
      const remote = p.pa.allocMany(PAGE, 8)!;
      const local = p.pb.allocMany(PAGE, 8)!;
      for (let i = 1; i < 8; i++) {
        assert.equal(remote[i], remote[0]! + i * PAGE, 'the serving pool hands out a contiguous run');
        assert.equal(local[i], local[0]! + i * PAGE, 'the reading pool hands out a contiguous run');
      }
      const data = randomBytes(8 * PAGE);
      p.pa.write(remote[0]!, data);
      // pages 0..5 granted as separate ranges, out of order
      p.a.addGrant(gid(3), 'B', f64([5, 2, 0, 4, 1, 3].flatMap((i) => [remote[i]!, PAGE])), Date.now() + 60_000);
      const all = (from: number, n: number, at = from) =>
        [
          f64(Array.from({ length: n }, (_, i) => remote[from + i]!)),
          f64(Array.from({ length: n }, (_, i) => local[at + i]!)),
          f64(Array.from({ length: n }, () => PAGE)),
        ] as const;
      assert.deepEqual(await p.b.readv('A', gid(3), ...all(0, 6)), { bytes: 6 * PAGE });
      assert.ok(p.pb.read(local[0]!, 6 * PAGE).equals(data.subarray(0, 6 * PAGE)));
      // one descriptor across three granted pages
      const zero = Buffer.alloc(3 * PAGE);
      p.pb.write(local[0]!, zero);
      assert.deepEqual(await p.b.readv('A', gid(3), f64([remote[1]!]), f64([local[0]!]), f64([3 * PAGE])), {
        bytes: 3 * PAGE,
      });
      assert.ok(p.pb.read(local[0]!, 3 * PAGE).equals(data.subarray(PAGE, 4 * PAGE)));
      // pages 4..7 merge into one descriptor that runs past the grant: refused as a whole, nothing written
      p.pb.write(local[4]!, Buffer.alloc(4 * PAGE));
      await rejectsWith(p.b.readv('A', gid(3), ...all(4, 4)), 'GRANT_REFUSED', /does not cover/);
      assert.ok(p.pb.read(local[4]!, 4 * PAGE).equals(Buffer.alloc(4 * PAGE)));
      // remote pages adjacent, local pages not: still byte-exact
      assert.deepEqual(
        await p.b.readv('A', gid(3), f64([remote[0]!, remote[1]!]), f64([local[7]!, local[5]!]), f64([PAGE, PAGE])),
        { bytes: 2 * PAGE },
      );
      assert.ok(p.pb.read(local[7]!, PAGE).equals(data.subarray(0, PAGE)));
      assert.ok(p.pb.read(local[5]!, PAGE).equals(data.subarray(PAGE, 2 * PAGE)));
    } finally {
      await p.close();
    }
  });

  test('a wrong secret or an unknown peer is refused at connect; garbage closes only that connection', async () => {
    const p = await pair({ conns: 2 });
    const pc = Pool.create({ sizeBytes: 1 << 20 });
    const c = await TcpTransport.create({ pool: pc, connectionsPerPeer: 3 });
    try {
      const good = parseTcpServerMaterial(await p.a.acceptPeer('C', await c.beginConnect('A')));
      const forged = encodeTcpServerMaterial({ ...good, secret: randomBytes(32) });
      await rejectsWith(c.completeConnect('A', forged), 'GRANT_REFUSED', /refused the connection/);
      const unknown = encodeTcpServerMaterial({ ...good, name: 'Z' });
      await rejectsWith(c.completeConnect('A', unknown), 'GRANT_REFUSED');
      await rejectsWith(c.readv('A', gid(1), f64([0]), f64([0]), f64([64])), 'TRANSPORT_FAILED', /no live connection/);
      assert.ok(p.a.counters().refused >= 2);
      // garbage on a raw socket: the server drops it and keeps serving
      await new Promise<void>((resolve) => {
        const s = connect(p.a.port, '127.0.0.1', () => s.end(Buffer.alloc(4096, 0xab)));
        s.resume(); // the server speaks first (its challenge): take it, or the close is never seen
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
      const r = p.pa.alloc(4096)!;
      p.a.addGrant(gid(9), 'B', f64([r, 4096]), Date.now() + 60_000);
      assert.equal((await p.b.readv('A', gid(9), f64([r]), f64([p.pb.alloc(4096)!]), f64([4096]))).bytes, 4096);
      // the real secret still works
      await c.completeConnect('A', encodeTcpServerMaterial(good));
    } finally {
      await c.close();
      pc.close();
      await p.close();
    }
  });

  test('arguments and material are validated with field names', async () => {
    const p = await pair({ conns: 1, poolBytes: 1 << 20 });
    try {
      throwsWith(() => p.a.addGrant('-1', 'B', f64([0, 1]), Date.now()), 'INVALID_ARGUMENT', /^grantId/);
      throwsWith(() => p.a.addGrant(gid(1), '', f64([0, 1]), Date.now()), 'INVALID_ARGUMENT', /^peerId/);
      throwsWith(() => p.a.addGrant(gid(1), 'B', f64([0]), Date.now()), 'INVALID_ARGUMENT', /^ranges/);
      throwsWith(
        () => p.a.addGrant(gid(1), 'B', f64([1 << 20, 1]), Date.now()),
        'INVALID_ARGUMENT',
        /outside the pool/,
      );
      throwsWith(() => p.a.addGrant(gid(1), 'B', f64([0, 1]), NaN), 'INVALID_ARGUMENT', /^expiresAtMs/);
      await rejectsWith(p.b.readv('A', gid(1), f64([0]), f64([0, 1]), f64([1])), 'INVALID_ARGUMENT', /equal lengths/);
      await rejectsWith(
        p.b.readv('A', gid(1), f64([0]), f64([1 << 20]), f64([1])),
        'INVALID_ARGUMENT',
        /^localOffsets\[0\]/,
      );
      await rejectsWith(
        p.b.readv('A', gid(1), f64([0.5]), f64([0]), f64([1])),
        'INVALID_ARGUMENT',
        /^remoteOffsets\[0\]/,
      );
      await rejectsWith(p.b.readv('A', gid(1), f64([0]), f64([0]), f64([0])), 'INVALID_ARGUMENT', /^lengths\[0\]/);
      await rejectsWith(
        p.b.readv('A', gid(1), f64([0]), f64([0]), f64([1]), { timeoutMs: 0 }),
        'INVALID_ARGUMENT',
        /^options.timeoutMs/,
      );
      assert.deepEqual(await p.b.readv('A', gid(1), f64([]), f64([]), f64([])), { bytes: 0 });
      const good = await p.a.acceptPeer('X', await p.b.beginConnect('A'));
      await rejectsWith(p.b.completeConnect('A', good.subarray(0, good.length - 1)), 'INVALID_ARGUMENT', /truncated/);
      await rejectsWith(
        p.b.completeConnect('A', Buffer.concat([good, Buffer.from([0])])),
        'INVALID_ARGUMENT',
        /trailing/,
      );
      const badVersion = Buffer.from(good);
      badVersion[4] = 9;
      await rejectsWith(p.b.completeConnect('A', badVersion), 'INVALID_ARGUMENT', /version 9/);
      const verbsKind = Buffer.from(good);
      verbsKind[5] = 2;
      await rejectsWith(p.b.completeConnect('A', verbsKind), 'INVALID_ARGUMENT', /for transport verbs/);
      await rejectsWith(p.a.acceptPeer('X', Buffer.from('hello')), 'INVALID_ARGUMENT', /^peerMaterial/);
      await assert.rejects(TcpTransport.create({ pool: p.pa, port: 70000 }), /options.port/);
      await assert.rejects(TcpTransport.create({ pool: p.pa, bogus: 1 } as never), /options.bogus/);
      await rejectsWith(TcpTransport.create({ pool: p.pa, port: p.a.port }), 'TRANSPORT_UNAVAILABLE', /bind/);
    } finally {
      await p.close();
    }
  });

  test('close() during reads rejects them; close is idempotent; use after close is refused', async () => {
    const p = await pair({ conns: 2, poolBytes: 128 << 20 });
    const n = 200;
    const page = 262144;
    const r = Array.from({ length: n }, () => p.pa.alloc(page)!);
    const l = Array.from({ length: n }, () => p.pb.alloc(page)!);
    p.a.addGrant(gid(1), 'B', f64([0, 128 << 20]), Date.now() + 60_000);
    const reads = Array.from({ length: 8 }, () => p.b.readv('A', gid(1), f64(r), f64(l), f64(r.map(() => page))));
    await p.b.close();
    const settled = await Promise.allSettled(reads);
    assert.ok(
      settled.some((s) => s.status === 'rejected'),
      'some reads must be cut off',
    );
    for (const s of settled) {
      if (s.status === 'rejected') assert.equal((s.reason as { code: string }).code, 'TRANSPORT_FAILED');
    }
    assert.equal(p.b.counters().readsInFlight, 0);
    await p.b.close();
    await rejectsWith(p.b.readv('A', gid(1), f64([0]), f64([0]), f64([1])), 'TRANSPORT_FAILED', /after close/);
    await p.close();
  });

  test('dropPeer rejects the reads in flight to that peer', async () => {
    const p = await pair({ conns: 2, poolBytes: 128 << 20 });
    try {
      const page = 262144;
      const r = Array.from({ length: 200 }, () => p.pa.alloc(page)!);
      const l = Array.from({ length: 200 }, () => p.pb.alloc(page)!);
      p.a.addGrant(gid(1), 'B', f64([0, 128 << 20]), Date.now() + 60_000);
      const reads = Array.from({ length: 8 }, () => p.b.readv('A', gid(1), f64(r), f64(l), f64(r.map(() => page))));
      p.b.dropPeer('A');
      const settled = await Promise.allSettled(reads);
      assert.ok(settled.some((s) => s.status === 'rejected'));
      await rejectsWith(p.b.readv('A', gid(1), f64([r[0]!]), f64([l[0]!]), f64([page])), 'TRANSPORT_FAILED');
      assert.equal(p.b.counters().readsInFlight, 0);
    } finally {
      await p.close();
    }
  });

  describe('serving peer in a child process', () => {
    const page = 2 << 20;
    const pages = 48;
    let child: ChildProcess;
    let seq = 0;
    let offsets: number[] = [];
    const waiting = new Map<number, (m: Record<string, unknown>) => void>();
    const call = (m: Record<string, unknown>): Promise<Record<string, unknown>> =>
      new Promise((resolve) => {
        const id = ++seq;
        waiting.set(id, resolve);
        child.send({ ...m, id });
      });

    async function start(): Promise<void> {
      child = fork(fixture('tcp-peer.ts'), [String(128 << 20), String(page), String(pages), '2'], {
        execArgv: ['--conditions=source', '--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
        child.on('message', (m: Record<string, unknown>) => {
          if (m.op === 'ready') resolve(m);
          else if (m.op === 'reply') waiting.get(m.id as number)?.(m);
        });
        child.on('exit', (code) => reject(new Error(`fixture exited with ${code}`)));
      });
      offsets = ready.offsets as number[];
    }

    async function connectTo(t: TcpTransport): Promise<void> {
      const reply = await call({ op: 'accept', peerId: 'B', material: (await t.beginConnect('S')).toString('base64') });
      await t.completeConnect('S', Buffer.from(reply.material as string, 'base64'));
      await call({
        op: 'grant',
        grantId: gid(1),
        peerId: 'B',
        ranges: [0, 128 << 20],
        expiresAtMs: Date.now() + 600_000,
      });
    }

    let pool: Pool;
    before(() => {
      pool = Pool.create({ sizeBytes: 256 << 20 });
    });
    after(() => pool.close());

    test('reads from another process are byte-exact; SIGKILL mid-read rejects everything in flight promptly', async () => {
      await start();
      const t = await TcpTransport.create({ pool, connectionsPerPeer: 2 });
      try {
        await connectTo(t);
        const local = offsets.map(() => pool.alloc(page)!);
        const batch = () => t.readv('S', gid(1), f64(offsets), f64(local), f64(offsets.map(() => page)));
        assert.equal((await batch()).bytes, page * pages);
        for (let i = 0; i < pages; i++)
          assert.ok(pool.read(local[i]!, page).equals(stamp(offsets[i]!, page)), `page ${i}`);
        const inflight = Array.from({ length: 16 }, batch);
        await new Promise((res) => setTimeout(res, 5));
        const killedAt = Date.now();
        child.kill('SIGKILL');
        const settled = await Promise.allSettled(inflight);
        const elapsed = Date.now() - killedAt;
        assert.ok(elapsed < 2000, `rejections took ${elapsed} ms`);
        const rejected = settled.filter((s) => s.status === 'rejected');
        assert.ok(rejected.length > 0, 'the kill must cut some batches off');
        for (const s of rejected) assert.equal((s.reason as { code: string }).code, 'TRANSPORT_FAILED');
        assert.equal(t.counters().readsInFlight, 0);
        await rejectsWith(batch(), 'TRANSPORT_FAILED');
        for (const l of local) pool.free(l, page);
      } finally {
        await t.close();
        child.kill('SIGKILL');
      }
    });

    test('a stalled peer (SIGSTOP) hits the per-batch timeout', async () => {
      await start();
      const t = await TcpTransport.create({ pool, connectionsPerPeer: 2 });
      try {
        await connectTo(t);
        const local = offsets.map(() => pool.alloc(page)!);
        child.kill('SIGSTOP');
        const started = Date.now();
        await rejectsWith(
          t.readv('S', gid(1), f64(offsets), f64(local), f64(offsets.map(() => page)), { timeoutMs: 300 }),
          'TRANSPORT_TIMEOUT',
          /timed out after 300 ms/,
        );
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 290 && elapsed < 1500, `timeout after ${elapsed} ms`);
        assert.equal(t.counters().readsInFlight, 0);
        for (const l of local) pool.free(l, page);
      } finally {
        await t.close();
        child.kill('SIGKILL');
      }
    });
  });

  test('a process that never closes its transports still exits by itself', () => {
    // A generous limit: it only catches a process that never exits, however busy the machine is.
    const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', fixture('tcp-no-close.ts')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { bytes: 4096, same: true });
  });
});
