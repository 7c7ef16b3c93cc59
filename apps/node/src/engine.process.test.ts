// kvfabric-node as a real process, engines as SDK clients (one in a separate child process). Every data-path test
// runs twice, with the same assertions: once on the command ring (shared memory, a native node thread) and once on
// the gRPC DataPlane, so both paths answer alike.
import { readdirSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { EngineConnection, KvEngine, KvRegion, kvLayout, type KvLayoutSpec } from '@kvfabric/client';

const LAYOUT: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 4096, numBlocks: 32 }; // 32 KiB pages
const PAGE = 4 * 2 * 4096;
const hash = (ns: string, i: number) => Buffer.from(`${ns}-hash-${String(i).padStart(6, '0')}`.padEnd(32, '.'));
const hashes = (ns: string, from: number, n: number) => Array.from({ length: n }, (_, i) => hash(ns, from + i));

interface EngineOpts {
  namespace?: string;
  tpSize?: number;
  tpRank?: number;
  engineId?: string;
  replicated?: boolean;
  layout?: KvLayoutSpec;
}
type MakeEngine = (node: NodeHandle, opts?: EngineOpts) => ReturnType<typeof makeEngine>;

/** A test of the data path, run on the command ring and on gRPC. */
function both(name: string, fn: (engine: MakeEngine) => Promise<void>): void {
  for (const ring of [true, false])
    test(`${name} [${ring ? 'command ring' : 'gRPC'}]`, () => fn((node, opts) => makeEngine(ring, node, opts)));
}

async function makeEngine(
  ring: boolean,
  node: NodeHandle,
  opts: {
    namespace?: string;
    tpSize?: number;
    tpRank?: number;
    engineId?: string;
    replicated?: boolean;
    layout?: KvLayoutSpec;
  } = {},
) {
  const region = KvRegion.create({ layout: opts.layout ?? LAYOUT });
  const kv = await KvEngine.register({
    target: node.engineSocket,
    namespace: opts.namespace ?? 'test/ns',
    region,
    ring,
    ...opts,
  });
  assert.equal(kv.usesRing, ring);
  return {
    kv,
    region,
    async [Symbol.asyncDispose]() {
      await kv.close();
      region.close();
    },
  };
}

function fill(region: KvRegion, blocks: number[]): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const b of blocks) {
    const data = randomBytes(region.geometry.blockBytes);
    region.writeBlock(b, data);
    out.set(b, data);
  }
  return out;
}

both('node process: TP=1 round trip, two instances share hits, bytes verified', async (engine) => {
  await using node = await startNode({ poolSize: '64mib' });
  await using a = await engine(node);
  await using b = await engine(node);
  assert.equal(a.kv.pageBytes, PAGE);
  const data = fill(a.region, [0, 1, 2, 3, 4, 5, 6, 7]);
  const saved = await a.kv.save([0, 1, 2, 3, 4, 5, 6, 7], hashes('t1', 0, 8));
  assert.equal(saved.sealed, 8);
  assert.deepEqual([...(await a.kv.save([0, 1], hashes('t1', 0, 2))).outcomes], [1, 1], 'duplicates: PRESENT');
  const q = await b.kv.query([...hashes('t1', 0, 8), hash('t1', 99)]);
  assert.equal(q.hits, 8);
  assert.ok(q.leaseId);
  const loaded = await b.kv.load(q.leaseId, [31, 30, 29, 28, 27, 26, 25, 24]);
  assert.deepEqual(loaded, { loaded: 8, bytes: 8 * PAGE });
  for (let i = 0; i < 8; i++) assert.ok(b.region.readBlock(31 - i).equals(data.get(i)!), `block ${i}`);
  const status = await b.kv.status();
  assert.equal(status.blocks, 8n);
  assert.equal(status.poolUsedBytes, BigInt(8 * PAGE));
  assert.equal(status.instances, 2);
  // Typed ids and packed hashes travel the same way as arrays and hash lists.
  const packed = { packed: Buffer.concat(hashes('t1', 8, 2)), hashLen: 32 };
  assert.deepEqual([...(await a.kv.save(Uint32Array.of(8, 9), packed)).outcomes], [0, 0], 'STORED');
  const p = await b.kv.query(packed);
  assert.equal(p.hits, 2);
  await b.kv.release(p.leaseId);
});

both('node process: TP=2 seals only when both ranks saved; replicated TP=4 is stored once', async (engine) => {
  await using node = await startNode({ poolSize: '64mib' });
  await using r0 = await engine(node, { namespace: 'tp2', tpSize: 2, tpRank: 0, engineId: 'eng-tp2' });
  await using r1 = await engine(node, { namespace: 'tp2', tpSize: 2, tpRank: 1, engineId: 'eng-tp2' });
  const d0 = fill(r0.region, [0, 1, 2]);
  const d1 = fill(r1.region, [0, 1, 2]);
  assert.equal((await r0.kv.save([0, 1, 2], hashes('tp2', 0, 3))).sealed, 0);
  assert.equal((await r0.kv.query(hashes('tp2', 0, 3))).hits, 0, 'no hit until both ranks saved');
  assert.equal((await r1.kv.save([0, 1, 2], hashes('tp2', 0, 3))).sealed, 3);
  const q = await r0.kv.query(hashes('tp2', 0, 3));
  assert.equal(q.hits, 3);
  await r0.kv.load(q.leaseId, [10, 11, 12]);
  await r1.kv.load(q.leaseId, [20, 21, 22]);
  for (let i = 0; i < 3; i++) {
    assert.ok(r0.region.readBlock(10 + i).equals(d0.get(i)!), `rank 0 block ${i}`);
    assert.ok(r1.region.readBlock(20 + i).equals(d1.get(i)!), `rank 1 block ${i}`);
  }
  const before = (await r0.kv.status()).poolUsedBytes;
  assert.equal(before, BigInt(3 * 2 * PAGE));

  const mla = await Promise.all(
    [0, 1, 2, 3].map((r) =>
      engine(node, { namespace: 'mla', tpSize: 4, tpRank: r, engineId: 'eng-mla', replicated: true }),
    ),
  );
  try {
    const dm = fill(mla[0]!.region, [5, 6]);
    for (const m of mla) await m.kv.save([5, 6], hashes('mla', 0, 2));
    const used = (await r0.kv.status()).poolUsedBytes - before;
    assert.equal(used, BigInt(2 * PAGE), 'MLA blocks stored once, not once per rank');
    const qm = await mla[3]!.kv.query(hashes('mla', 0, 2));
    assert.equal(qm.hits, 2);
    for (const [r, m] of mla.entries()) await m.kv.load(qm.leaseId, [r, r + 8]);
    for (const [r, m] of mla.entries()) assert.ok(m.region.readBlock(r + 8).equals(dm.get(6)!), `rank ${r}`);
  } finally {
    for (const m of mla) await m[Symbol.asyncDispose]();
  }
});

both('node process: leases are per rank, foreign engines refused, released, expired', async (engine) => {
  await using node = await startNode({ poolSize: '64mib', args: ['--lease-ttl-secs', '0.5'] });
  await using a = await engine(node, { namespace: 'lease', tpSize: 2, tpRank: 0, engineId: 'A' });
  await using a1 = await engine(node, { namespace: 'lease', tpSize: 2, tpRank: 1, engineId: 'A' });
  await using other = await engine(node, { namespace: 'lease', tpSize: 2, tpRank: 0, engineId: 'B' });
  fill(a.region, [0, 1]);
  await a.kv.save([0, 1], hashes('l', 0, 2));
  await a1.kv.save([0, 1], hashes('l', 0, 2));
  const q = await a.kv.query(hashes('l', 0, 2));
  await assert.rejects(other.kv.load(q.leaseId, [0]), { code: 'LEASE_FOREIGN' });
  await a.kv.load(q.leaseId, [3]);
  await assert.rejects(a.kv.load(q.leaseId, [3]), { code: 'LEASE_CONSUMED' });
  await a1.kv.load(q.leaseId, [3, 4]);
  await assert.rejects(a1.kv.load(q.leaseId, [3]), { code: 'LEASE_CONSUMED' });
  const q2 = await a.kv.query(hashes('l', 0, 2));
  await a.kv.release(q2.leaseId);
  await assert.rejects(a.kv.load(q2.leaseId, [0]), { code: 'LEASE_UNKNOWN' });
  await assert.rejects(a.kv.load('no-such-lease', [0]), { code: 'LEASE_UNKNOWN', message: /lease_id/ });
  const q3 = await a.kv.query(hashes('l', 0, 2));
  await sleep(700);
  await assert.rejects(a.kv.load(q3.leaseId, [0]), { code: 'LEASE_EXPIRED' });
});

both(
  'node process: eviction under pressure keeps pinned blocks, evicts the least recent, never overcommits',
  async (engine) => {
    // 4 MiB pool; 256 KiB pages -> 16 pages.
    const layout: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 32 * 1024, numBlocks: 40 };
    await using node = await startNode({ poolSize: '4mib' });
    await using e = await engine(node, { namespace: 'evict', layout });
    const data = fill(
      e.region,
      Array.from({ length: 40 }, (_, i) => i),
    );
    const status = await e.kv.status();
    const capacityPages = Number(status.poolCapacityBytes) / e.kv.pageBytes;
    assert.equal(capacityPages, 16);
    await e.kv.save(range(0, 16), hashes('ev', 0, 16));
    const pinned = await e.kv.query(hashes('ev', 0, 2)); // leases pin blocks 0, 1
    await e.kv.query(hashes('ev', 2, 2)).then((q) => e.kv.release(q.leaseId)); // blocks 2, 3 recently used
    const s = await e.kv.save(range(16, 4), hashes('ev', 16, 4));
    assert.equal(s.stored, 4);
    const present = await Promise.all(range(0, 20).map(async (i) => (await e.kv.query([hash('ev', i)])).hits));
    // Blocks 4..7 were the least recent unpinned: gone. 0..3 and 8..19 stay.
    assert.deepEqual(
      present.map((h, i) => (h ? i : -1)).filter((i) => i >= 0),
      [0, 1, 2, 3, ...range(8, 12)],
    );
    const after = await e.kv.status();
    assert.ok(after.poolUsedBytes <= after.poolCapacityBytes);
    // The pinned blocks still hold their bytes.
    await e.kv.load(pinned.leaseId, [39, 38]);
    assert.ok(e.region.readBlock(39).equals(data.get(0)!));
    assert.ok(e.region.readBlock(38).equals(data.get(1)!));
    // Pin everything, then a save fails with RESOURCE_EXHAUSTED and the node keeps serving.
    const all = await e.kv.query([...hashes('ev', 8, 12)]);
    const pin2 = await e.kv.query(hashes('ev', 0, 4));
    assert.equal(all.hits + pin2.hits, 16);
    await assert.rejects(e.kv.save([20], [hash('ev', 20)]), { code: 'POOL_EXHAUSTED' });
    assert.equal((await e.kv.query(hashes('ev', 0, 4))).hits, 4, 'still serving');
  },
);

both('node process: bad inputs get precise errors and change nothing', async (engine) => {
  await using node = await startNode({ poolSize: '64mib' });
  await using a = await engine(node, { namespace: 'bad' });
  await assert.rejects(engine(node, { namespace: 'bad', layout: { ...LAYOUT, numLayers: 8 } }), {
    code: 'GEOMETRY_CONFLICT',
    message: /segments 16 \(fixed: 8\)/,
  });
  await assert.rejects(a.kv.save([0, 99], hashes('b', 0, 2)), {
    code: 'INVALID_ARGUMENT',
    message: /block_ids\[1\]: expected 0..31, got 99/,
  });
  await assert.rejects(a.kv.save([0, 1, 2], hashes('b', 0, 2)), {
    code: 'INVALID_ARGUMENT',
    message: /block_ids: expected 2 ids/,
  });
  await assert.rejects(a.kv.save([0, 1], [hash('b', 0), Buffer.alloc(31)]), {
    code: 'INVALID_ARGUMENT',
    message: /hashes\[1\]: expected 32 bytes like hashes\[0\], got 31/,
  });
  await assert.rejects(a.kv.query([hash('b', 0), Buffer.alloc(31)]), {
    code: 'INVALID_ARGUMENT',
    message: /hashes\[1\]: expected 32 bytes like hashes\[0\], got 31/,
  });
  await assert.rejects(a.kv.load('nope', [0]), { code: 'LEASE_UNKNOWN' });
  await assert.rejects(engine(node, { namespace: 'x'.repeat(129) }), {
    code: 'INVALID_ARGUMENT',
    message: /namespace: expected at most 128/,
  });
  const small = KvRegion.create({ layout: LAYOUT });
  try {
    const g = kvLayout(LAYOUT);
    await assert.rejects(
      KvEngine.register({
        target: node.engineSocket,
        namespace: 'bad',
        region: { fd: small.descriptor, sizeBytes: g.sizeBytes - 1, geometry: g },
      }),
      { code: 'REGION_INVALID', message: /region.size_bytes: .* too small/ },
    );
    const conn = new EngineConnection(node.engineSocket);
    try {
      const register = {
        instanceId: 'no-handover',
        engineId: '',
        namespace: 'bad',
        tpSize: 1,
        tpRank: 0,
        worldSize: 0,
        replicated: false,
        geometry: {
          segmentOffsets: g.segmentOffsets.map(BigInt),
          segmentBytes: BigInt(g.segmentBytes),
          blockStrideBytes: BigInt(g.blockStrideBytes),
          numBlocks: g.numBlocks,
        },
      };
      await assert.rejects(
        conn.call('registerInstance', {
          ...register,
          region: { token: 'f'.repeat(32), sizeBytes: BigInt(g.sizeBytes) },
        }),
        {
          code: 'REGION_INVALID',
          message: /^region.token: "f{32}" names no handed-over region/,
        },
      );
      await assert.rejects(
        conn.call('registerInstance', { ...register, region: { token: '', sizeBytes: BigInt(g.sizeBytes) } }),
        {
          code: 'INVALID_ARGUMENT',
          message: /^region.token: required/,
        },
      );
    } finally {
      conn.close();
    }
  } finally {
    small.close();
  }
  const status = await a.kv.status();
  assert.equal(status.blocks, 0n);
  assert.equal(status.poolUsedBytes, 0n);
  assert.equal(status.instances, 1);
});

test('node process: on a ring of 2 command slots, more calls than slots wait for one; a failed call frees its slot', async () => {
  await using node = await startNode({ poolSize: '64mib' });
  const region = KvRegion.create({ layout: LAYOUT });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'slots', region, ring: { entries: 2 } });
  try {
    assert.equal(kv.usesRing, true);
    const data = fill(region, [...Array(16).keys()]);
    const saves = await Promise.all(
      [0, 1, 2, 3].map((c) => kv.save([c * 4, c * 4 + 1, c * 4 + 2, c * 4 + 3], hashes('s', c * 4, 4))),
    );
    for (const r of saves) assert.deepEqual([r.stored, r.outcomes.length], [4, 4]);
    // Queries, a load that fails (unknown lease) and loads queued behind them: each settles with its own answer.
    const leases = await Promise.all([0, 1, 2, 3].map((c) => kv.query(hashes('s', c * 4, 4), { localOnly: true })));
    assert.deepEqual(
      leases.map((q) => q.hits),
      [4, 4, 4, 4],
    );
    const bad = kv.load('x'.repeat(16), [0]).then(
      () => assert.fail('an unknown lease loaded'),
      (e: unknown) => e,
    );
    const loads = leases.map((q, c) => kv.load(q.leaseId, [16 + c * 4, 17 + c * 4, 18 + c * 4, 19 + c * 4]));
    assert.equal(((await bad) as { code?: string }).code, 'LEASE_UNKNOWN');
    for (const res of await Promise.all(loads)) assert.deepEqual(res, { loaded: 4, bytes: 4 * PAGE });
    for (let b = 0; b < 16; b++)
      assert.ok(region.readBlock(16 + b).equals(data.get(b)!), `block ${b} loaded byte-exact`);
    assert.equal(kv.usesRing, true, 'every call went over the ring');
  } finally {
    await kv.close();
    region.close();
  }
});

test('node process: an engine process killed loses its instance and its leases', async () => {
  await using node = await startNode({ poolSize: '64mib' });
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./testing/engine-child.ts', import.meta.url)),
      node.engineSocket,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => resolve(c.toString().trim()));
    child.once('exit', (code) => reject(new Error(`engine child exited ${code}`)));
  });
  assert.equal(ready, 'ready');
  const conn = new EngineConnection(node.engineSocket);
  try {
    const before = await conn.status();
    assert.equal(before.instances, 1);
    const metrics = async () => await (await fetch(`http://${node.httpAddr}/metrics`)).text();
    assert.match(await metrics(), /kvfabric_lease_active\{[^}]*\} 1\n/);
    assert.match(await metrics(), /kvfabric_engine_rings\{[^}]*\} 1\n/, 'the engine saves on its command ring');
    assert.match(await metrics(), /kvfabric_index_pinned_blocks\{[^}]*\} 4\n/);
    child.kill('SIGKILL');
    let after = before;
    const deadline = Date.now() + 60_000; // generous: a busy machine only makes this slower
    while (after.instances !== 0 && Date.now() < deadline) {
      await sleep(50);
      after = await conn.status();
    }
    assert.equal(after.instances, 0);
    assert.equal(after.blocks, 4n, 'the saved blocks stay in the cache');
    assert.match(await metrics(), /kvfabric_lease_active\{[^}]*\} 0\n/);
    assert.match(await metrics(), /kvfabric_engine_rings\{[^}]*\} 0\n/, 'its ring went with it');
    assert.match(await metrics(), /kvfabric_index_pinned_blocks\{[^}]*\} 0\n/);
  } finally {
    child.kill('SIGKILL');
    conn.close();
    // A killed engine cannot remove its region file: do it for it.
    for (const f of readdirSync('/dev/shm'))
      if (f.startsWith(`kvfabric-${child.pid}-`)) rmSync(`/dev/shm/${f}`, { force: true });
  }
});

function range(from: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}
