// The DataPlane stream against a real kvfabric-node process: concurrent saves and loads interleaved on one stream
// (bytes verified), per-item errors that leave the stream serving, the stream's instance binding, and a node killed
// under in-flight calls (typed rejections, promptly; the next call opens a new stream).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { EngineClient, type DataPlaneRequest, type DataPlaneResponse } from '@kvfabric/proto';
import { KvError, packHashes, packU32 } from '@kvfabric/common';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { KvEngine, KvRegion, type KvLayoutSpec } from '@kvfabric/client';

const LAYOUT: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 4096, numBlocks: 32 }; // 32 KiB pages
const hash = (tag: string, i: number) => Buffer.from(`${tag}-${String(i).padStart(6, '0')}`.padEnd(32, '.'));
const hashes = (tag: string, from: number, n: number) => Array.from({ length: n }, (_, i) => hash(tag, from + i));
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** Waits until every thread of process `pid` is stopped (SIGSTOP reaches each thread on its own time). */
async function stopped(pid: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  const state = (tid: string) => readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  while (readdirSync(`/proc/${pid}/task`).some((t) => state(t) !== 'T')) {
    if (Date.now() > deadline) assert.fail(`process ${pid} did not stop`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function engine(node: NodeHandle, instanceId?: string) {
  const region = KvRegion.create({ layout: LAYOUT });
  // The DataPlane stream is what these tests are about: no command ring.
  const kv = await KvEngine.register({
    target: node.engineSocket,
    namespace: 'stream/ns',
    region,
    instanceId,
    ring: false,
  });
  return {
    kv,
    region,
    async [Symbol.asyncDispose]() {
      await kv.close();
      region.close();
    },
  };
}

/** `kvfabric_rpc_total{method=M,status=S}` from the node's /metrics (0 when absent). */
async function rpcTotal(node: NodeHandle, method: string, status = 'OK'): Promise<number> {
  const text = await (await fetch(`http://${node.httpAddr}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('kvfabric_rpc_total{') && l.includes(`method="${method}"`) && l.includes(`status="${status}"`),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** A raw DataPlane stream presenting `key` (an instance key): write items, collect answers by id. */
function rawStream(node: NodeHandle, key: string) {
  const rpc = new EngineClient(`unix:${node.engineSocket}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('kvfabric-instance-key', key);
  const call = rpc.dataPlane(metadata);
  const answers = new Map<number, DataPlaneResponse>();
  const waiters = new Map<number, (res: DataPlaneResponse) => void>();
  call.on('data', (res: DataPlaneResponse) => {
    answers.set(res.id, res);
    waiters.get(res.id)?.(res);
  });
  call.on('error', () => {});
  return {
    write: (req: DataPlaneRequest) => call.write(req),
    answer: (id: number) =>
      answers.get(id)
        ? Promise.resolve(answers.get(id)!)
        : new Promise<DataPlaneResponse>((resolve) => waiters.set(id, resolve)),
    close() {
      call.end();
      rpc.close();
    },
  };
}

test('DataPlane: concurrent saves and loads interleaved on one stream are byte-exact', async () => {
  await using node = await startNode({ poolSize: '64mib', logLevel: 'warn' });
  await using a = await engine(node);
  await using b = await engine(node);
  const data = new Map<number, Buffer>();
  for (const blk of range(0, 32)) {
    const bytes = randomBytes(a.region.geometry.blockBytes);
    a.region.writeBlock(blk, bytes);
    data.set(blk, bytes);
  }
  // First wave saved, then a second wave of saves on a's stream while b loads the first wave on its own.
  const first = await Promise.all(range(0, 4).map((c) => a.kv.save(range(c * 4, 4), hashes('w', c * 4, 4))));
  assert.deepEqual(
    first.map((r) => r.stored),
    [4, 4, 4, 4],
  );
  const leases = await Promise.all(range(0, 4).map((c) => b.kv.query(hashes('w', c * 4, 4))));
  assert.deepEqual(
    leases.map((q) => q.hits),
    [4, 4, 4, 4],
  );
  const ops: Promise<unknown>[] = [];
  for (let c = 0; c < 4; c++) {
    ops.push(a.kv.save(range(16 + c * 4, 4), hashes('w', 16 + c * 4, 4)));
    // b's loads land reversed: block i of wave c goes to 31 - (c * 4 + i)
    ops.push(
      b.kv.load(
        leases[c]!.leaseId,
        range(0, 4).map((i) => 31 - (c * 4 + i)),
      ),
    );
    ops.push(a.kv.query(hashes('w', c * 4, 4)).then((q) => a.kv.release(q.leaseId)));
  }
  const settled = await Promise.all(ops);
  for (let c = 0; c < 4; c++) {
    assert.equal((settled[c * 3] as { stored: number }).stored, 4, `save ${c}`);
    assert.deepEqual(settled[c * 3 + 1], { loaded: 4, bytes: 4 * a.region.geometry.blockBytes }, `load ${c}`);
  }
  for (let i = 0; i < 16; i++)
    assert.ok(b.region.readBlock(31 - i).equals(data.get(i)!), `b block ${31 - i} = saved block ${i}`);
  // the second wave: loaded back into a at 0..15 (a's region still holds the first wave there)
  const q = await a.kv.query(hashes('w', 16, 16));
  assert.equal(q.hits, 16);
  await a.kv.load(q.leaseId, range(0, 16));
  for (let i = 0; i < 16; i++)
    assert.ok(a.region.readBlock(i).equals(data.get(16 + i)!), `a block ${i} = saved block ${16 + i}`);
  // all of it went over DataPlane, none as unary calls
  assert.equal(await rpcTotal(node, 'dataPlane.save'), 8);
  assert.equal(await rpcTotal(node, 'dataPlane.load'), 5);
  assert.equal(await rpcTotal(node, 'dataPlane.release'), 4);
  assert.equal(await rpcTotal(node, 'save'), 0);
  assert.equal(await rpcTotal(node, 'load'), 0);
});

test('DataPlane: a bad item is answered with its own INVALID_ARGUMENT and the stream keeps serving', async () => {
  await using node = await startNode({ poolSize: '64mib', logLevel: 'warn' });
  await using a = await engine(node, 'inst-a');
  a.region.writeBlock(0, Buffer.alloc(a.region.geometry.blockBytes, 0xab));
  const s = rawStream(node, a.kv.conn.instanceKey);
  try {
    const save = (id: number, instanceId: string, ids: number[], tag: string) =>
      s.write({
        id,
        op: {
          $case: 'save',
          value: { instanceId, blockIds: packU32(ids), hashes: packHashes(hashes(tag, 0, ids.length)) },
        },
      });
    save(1, 'inst-a', [0, 99], 'bad'); // binds the stream to inst-a, then fails: block id out of range
    s.write({ id: 2, op: undefined });
    save(3, '', [0], 'ok'); // the stream's instance
    s.write({
      id: 5,
      op: { $case: 'load', value: { instanceId: '', leaseId: 'no-such-lease', blockIds: packU32([1]) } },
    });
    save(6, 'inst-missing', [0], 'ok');
    // items run concurrently (like concurrent unary calls): the query goes after the save's answer
    await s.answer(3);
    s.write({
      id: 4,
      op: {
        $case: 'query',
        value: { instanceId: '', requestId: '', hashes: packHashes(hashes('ok', 0, 1)), localOnly: true, waitMs: 0 },
      },
    });
    const [r1, r2, r3, r4, r5, r6] = await Promise.all([1, 2, 3, 4, 5, 6].map((id) => s.answer(id)));
    assert.deepEqual(r1!.result, {
      $case: 'error',
      value: { code: 'INVALID_ARGUMENT', message: 'block_ids[1]: expected 0..31, got 99' },
    });
    assert.deepEqual(r2!.result, {
      $case: 'error',
      value: { code: 'INVALID_ARGUMENT', message: 'op: expected one of save, query, load, release' },
    });
    assert.equal(r3!.result?.$case, 'save');
    assert.deepEqual(
      r3!.result?.$case === 'save' && [...r3!.result.value.outcomes],
      [0],
      'stored for the stream instance',
    );
    assert.equal(r4!.result?.$case === 'query' && r4!.result.value.hits, 1);
    assert.equal(r5!.result?.$case === 'error' && r5!.result.value.code, 'LEASE_UNKNOWN');
    assert.equal(r6!.result?.$case === 'error' && r6!.result.value.code, 'INSTANCE_UNKNOWN');
    // the bad save changed nothing: only block "ok-0" is resident
    assert.equal((await a.kv.status()).blocks, 1n);
    assert.equal((await a.kv.query(hashes('bad', 0, 1), { localOnly: true })).hits, 0);
    // the instance's lease from item 4 loads through the SDK (same node state as the unary path)
    const lease = r4!.result?.$case === 'query' ? r4!.result.value.leaseId : '';
    await a.kv.load(lease, [7]);
    assert.ok(a.region.readBlock(7).equals(Buffer.alloc(a.region.geometry.blockBytes, 0xab)));
  } finally {
    s.close();
  }
  // a stream whose first item names no instance
  const t = rawStream(node, '');
  try {
    t.write({ id: 9, op: { $case: 'release', value: { instanceId: '', leaseId: 'x' } } });
    assert.deepEqual((await t.answer(9)).result, {
      $case: 'error',
      value: { code: 'INVALID_ARGUMENT', message: "instance_id: required on the stream's first item" },
    });
    // a stream without the instance's key cannot act for it
    t.write({
      id: 10,
      op: {
        $case: 'save',
        value: { instanceId: 'inst-a', blockIds: packU32([1]), hashes: packHashes(hashes('x', 0, 1)) },
      },
    });
    assert.deepEqual((await t.answer(10)).result, {
      $case: 'error',
      value: {
        code: 'INSTANCE_FOREIGN',
        message: 'instance_id: "inst-a" was registered by another caller (metadata kvfabric-instance-key is missing)',
      },
    });
    assert.equal((await a.kv.status()).blocks, 1n, 'the foreign save stored nothing');
  } finally {
    t.close();
  }
  // and through the SDK: the refused save rejects alone, the next call on the same stream works
  await assert.rejects(
    a.kv.save([0, 99], hashes('sdk', 0, 2)),
    (err: unknown) =>
      err instanceof KvError &&
      err.code === 'INVALID_ARGUMENT' &&
      /block_ids\[1\]: expected 0..31, got 99/.test(err.message),
  );
  assert.equal((await a.kv.save([0], hashes('sdk', 0, 1))).stored, 1);
  assert.equal(await rpcTotal(node, 'dataPlane.save', 'INVALID_ARGUMENT'), 2);
});

test('DataPlane: node killed under in-flight calls → they reject promptly with a typed error; next call reopens', async () => {
  await using node = await startNode({ poolSize: '64mib', logLevel: 'warn' });
  const region = KvRegion.create({ layout: LAYOUT });
  const kv = await KvEngine.register({
    target: node.engineSocket,
    namespace: 'stream/kill',
    region,
    session: false,
    ring: false,
  });
  try {
    assert.equal((await kv.save(range(0, 8), hashes('k', 0, 8))).stored, 8, 'the stream is open');
    const q = await kv.query(hashes('k', 0, 8));
    node.proc.kill('SIGSTOP'); // calls now stay in flight
    const inFlight = [
      kv.save(range(8, 8), hashes('k', 8, 8)),
      kv.load(q.leaseId, range(16, 8)),
      kv.query(hashes('k', 0, 4), { localOnly: true }),
    ].map((p) =>
      p.then(
        () => assert.fail('resolved after the node was killed'),
        (err: unknown) => err,
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    node.proc.kill('SIGKILL');
    // Rejected because the stream failed (TRANSPORT_UNAVAILABLE), not at their deadlines (TRANSPORT_TIMEOUT).
    const errors = await Promise.all(inFlight);
    for (const err of errors) {
      assert.ok(err instanceof KvError, `a KvError, got ${String(err)}`);
      assert.equal(err.code, 'TRANSPORT_UNAVAILABLE');
      assert.match(err.message, /data plane stream to .* failed/);
    }
    // the next call opens a new stream: nobody listens now, so it fails as unavailable (not at its deadline), typed
    await assert.rejects(
      kv.save([0], hashes('k', 0, 1)),
      (err: unknown) => err instanceof KvError && err.code === 'TRANSPORT_UNAVAILABLE',
    );
    // a new node on the same socket: a later call reaches it over a new stream once the channel reconnected
    // (its backoff), and is answered by it (it knows no such instance)
    await node.restart();
    let code = '';
    const deadline = Date.now() + 60_000; // generous: a busy machine only makes this slower
    while (code !== 'INSTANCE_UNKNOWN' && Date.now() < deadline) {
      code = await kv.save([0], hashes('k', 0, 1)).then(
        () => 'OK',
        (err: KvError) => err.code,
      );
      assert.ok(code === 'INSTANCE_UNKNOWN' || code === 'TRANSPORT_UNAVAILABLE', code);
      if (code !== 'INSTANCE_UNKNOWN') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(code, 'INSTANCE_UNKNOWN');
  } finally {
    await kv.close();
    region.close();
  }
});

test('command ring: node killed under in-flight calls → they reject promptly (the session ends); later calls go over gRPC', async () => {
  await using node = await startNode({ poolSize: '64mib', logLevel: 'warn' });
  const region = KvRegion.create({ layout: LAYOUT });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'ring/kill', region });
  try {
    assert.equal(kv.usesRing, true);
    assert.equal((await kv.save(range(0, 8), hashes('r', 0, 8))).stored, 8);
    const q = await kv.query(hashes('r', 0, 8));
    node.proc.kill('SIGSTOP'); // its ring thread stops too: commands stay in flight
    await stopped(node.proc.pid); // (a ring thread still running would answer them)
    const inFlight = [
      kv.save(range(8, 8), hashes('r', 8, 8)),
      kv.load(q.leaseId, range(16, 8)),
      kv.query(hashes('r', 0, 4), { localOnly: true }),
    ].map((p) =>
      p.then(
        () => assert.fail('resolved after the node was killed'),
        (err: unknown) => err,
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    node.proc.kill('SIGKILL');
    const errors = await Promise.all(inFlight);
    for (const err of errors) {
      assert.ok(err instanceof KvError, `a KvError, got ${String(err)}`);
      assert.equal(err.code, 'TRANSPORT_UNAVAILABLE');
      assert.match(err.message, /session (lost|ended)/);
    }
    assert.equal(kv.usesRing, false, 'the ring went with the session');
    await assert.rejects(
      kv.save([0], hashes('r', 0, 1)),
      (err: unknown) => err instanceof KvError && err.code === 'TRANSPORT_UNAVAILABLE',
    );
  } finally {
    await kv.close();
    region.close();
  }
});

test('command ring: a node that stops completing commands → the watchdog fails them with TRANSPORT_TIMEOUT; later calls go over gRPC', async () => {
  await using node = await startNode({ poolSize: '64mib', logLevel: 'warn' });
  const region = KvRegion.create({ layout: LAYOUT });
  // The ring's watchdog uses the engine's call deadline (short here): it answers before the session's keepalive gives up.
  const kv = await KvEngine.register({
    target: node.engineSocket,
    namespace: 'ring/watchdog',
    region,
    deadlineMs: 1500,
  });
  try {
    assert.equal(kv.usesRing, true);
    const blocks = range(0, 8).map(() => randomBytes(region.geometry.blockBytes));
    blocks.forEach((b, i) => region.writeBlock(i, b));
    assert.equal((await kv.save(range(0, 8), hashes('w', 0, 8))).stored, 8);
    node.proc.kill('SIGSTOP'); // alive (its sockets stay open, the session does not end) but answers nothing
    await stopped(node.proc.pid);
    const err = await kv.save(range(8, 8), hashes('w', 8, 8)).then(
      () => assert.fail('resolved while the node was stopped'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KvError, `a KvError, got ${String(err)}`);
    assert.equal(err.code, 'TRANSPORT_TIMEOUT');
    assert.match(err.message, /completed no command within 1500 ms/);
    assert.equal(kv.usesRing, false, 'the watchdog closed the ring');
    node.proc.kill('SIGCONT');
    // The same engine goes on over gRPC: its earlier blocks are still there and load byte-exact.
    const q = await kv.query(hashes('w', 0, 8), { localOnly: true });
    assert.equal(q.hits, 8);
    assert.equal((await kv.load(q.leaseId, range(16, 8))).loaded, 8);
    blocks.forEach((b, i) => assert.ok(region.readBlock(16 + i).equals(b), `block ${i} byte-exact`));
  } finally {
    await kv.close();
    region.close();
  }
});
