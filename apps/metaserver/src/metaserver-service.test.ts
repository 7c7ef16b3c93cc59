// The metaserver as a real process: gRPC round trips with exact values, every bad input refused with the right
// status and a message naming the field (and nothing changed), /health and /metrics, SIGTERM drain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { BlockTier, MetaserverClient, NodeState, TransportKind, type HashList } from '@kvfabric/proto';
import { CHANNEL_OPTIONS, ERROR_CODE_KEY } from '@kvfabric/common/rpc';
import { startMetaserver, type MetaserverHandle } from '@kvfabric/testkit';

const TCP = TransportKind.TRANSPORT_KIND_TCP;
const VERBS = TransportKind.TRANSPORT_KIND_VERBS;

type RawClient = InstanceType<typeof MetaserverClient>;

type Call = (req: any, cb: (err: grpc.ServiceError | null, res: any) => void) => unknown;

/** Promise form of one unary call on the generated gRPC client (a real call over loopback). */
function call<T = any>(raw: RawClient, method: keyof RawClient & string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    // an InsertBlocks without a tier is an older node's (the generated encoder needs the field: UNSPECIFIED)
    const full = method === 'insertBlocks' ? { tier: 0, ...(req as object) } : req;
    (raw[method] as unknown as Call).call(raw, full, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

async function refused(
  raw: RawClient,
  method: keyof RawClient & string,
  req: unknown,
): Promise<{ code: grpc.status; kv: string; details: string }> {
  try {
    await call(raw, method, req);
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, kv: String(e.metadata.get(ERROR_CODE_KEY)[0]), details: e.details };
  }
  assert.fail(`${method} unexpectedly succeeded`);
}

/** 32-byte hashes: byte 0 = tag, bytes 1..4 = id. */
function hl(ids: number[], tag = 1, len = 32): HashList {
  const packed = Buffer.alloc(ids.length * len);
  ids.forEach((id, i) => {
    packed[i * len] = tag;
    packed.writeUInt32BE(id, i * len + 1);
  });
  return { packed, hashLen: len };
}

function stats(used: bigint, capacity = 1n << 30n, blocks = 0n, ssd = { capacity: 0n, used: 0n }) {
  return {
    poolCapacityBytes: capacity,
    poolUsedBytes: used,
    blocks,
    ssdCapacityBytes: ssd.capacity,
    ssdUsedBytes: ssd.used,
  };
}

let ms: MetaserverHandle;
let raw: RawClient;

before(async () => {
  ms = await startMetaserver({ args: ['--sweep-interval-secs', '1'] });
  raw = new MetaserverClient(ms.addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
});

after(async () => {
  raw?.close();
  await ms?.stop();
});

test('round trip: heartbeats, inserts with reclaim hints, prefix and owners, listings, stats', async () => {
  const hb = await call(raw, 'heartbeat', {
    nodeId: 'node-a',
    addr: '10.0.0.1:7001',
    transports: [TCP, VERBS],
    stats: stats(300n, 1000n, 4n),
  });
  assert.equal(hb.registered, true);
  assert.equal(hb.nodeStaleSecs, 30);
  const epoch: bigint = hb.epoch;
  assert.ok(epoch > 0n);
  const again = await call(raw, 'heartbeat', {
    nodeId: 'node-a',
    addr: '10.0.0.1:7001',
    transports: [TCP, VERBS],
    stats: stats(300n, 1000n, 4n),
  });
  assert.deepEqual(again, { epoch, registered: false, nodeStaleSecs: 30 });
  await call(raw, 'heartbeat', {
    nodeId: 'node-b',
    addr: '10.0.0.2:7001',
    transports: [TCP],
    stats: stats(100n, 1000n),
  });
  await call(raw, 'heartbeat', {
    nodeId: 'node-c',
    addr: '10.0.0.3:7001',
    transports: [TCP],
    stats: stats(200n, 1000n),
  });

  assert.deepEqual(await call(raw, 'insertBlocks', { nodeId: 'node-a', namespace: 'rt', hashes: hl([0, 1, 2, 3]) }), {
    epoch,
    inserted: 4n,
    reclaimable: { packed: Buffer.alloc(0), hashLen: 32 },
  });
  assert.deepEqual(await call(raw, 'insertBlocks', { nodeId: 'node-b', namespace: 'rt', hashes: hl([0, 1, 3]) }), {
    epoch,
    inserted: 3n,
    reclaimable: { packed: Buffer.alloc(0), hashLen: 32 },
  });
  // node-c holds its blocks on SSD; node-a (no tier: an older node, DRAM) moves block 3 to both tiers
  const onSsd = { nodeId: 'node-c', namespace: 'rt', hashes: hl([0, 1, 5]), tier: BlockTier.BLOCK_TIER_SSD };
  assert.deepEqual(await call(raw, 'insertBlocks', onSsd), {
    epoch,
    inserted: 3n,
    reclaimable: hl([0, 1]),
  });
  const both = { nodeId: 'node-a', namespace: 'rt', hashes: hl([3]), tier: BlockTier.BLOCK_TIER_BOTH };
  assert.deepEqual(await call(raw, 'insertBlocks', both), {
    epoch,
    inserted: 0n,
    reclaimable: { packed: Buffer.alloc(0), hashLen: 32 },
  });

  const prefix = await call(raw, 'queryPrefix', { namespace: 'rt', hashes: hl([0, 1, 2, 3, 4]), excludeNodeId: '' });
  assert.deepEqual(prefix, {
    epoch,
    nodes: [
      {
        nodeId: 'node-a',
        addr: '10.0.0.1:7001',
        prefixLen: 4,
        transports: [TCP, VERBS],
        poolUsedBytes: 300n,
        poolCapacityBytes: 1000n,
        ssdBlocks: 0,
      },
      {
        nodeId: 'node-b',
        addr: '10.0.0.2:7001',
        prefixLen: 2,
        transports: [TCP],
        poolUsedBytes: 100n,
        poolCapacityBytes: 1000n,
        ssdBlocks: 0,
      },
      {
        nodeId: 'node-c',
        addr: '10.0.0.3:7001',
        prefixLen: 2,
        transports: [TCP],
        poolUsedBytes: 200n,
        poolCapacityBytes: 1000n,
        ssdBlocks: 2,
      },
    ],
  });
  const excluded = await call(raw, 'queryPrefix', {
    namespace: 'rt',
    hashes: hl([0, 1, 2, 3, 4]),
    excludeNodeId: 'node-a',
  });
  assert.deepEqual(
    excluded.nodes.map((n: { nodeId: string }) => n.nodeId),
    ['node-b', 'node-c'],
  );
  assert.deepEqual(await call(raw, 'queryPrefix', { namespace: 'rt', hashes: hl([9, 0]), excludeNodeId: '' }), {
    epoch,
    nodes: [],
  });

  assert.deepEqual(await call(raw, 'queryOwners', { namespace: 'rt', hashes: hl([3, 5, 9]) }), {
    epoch,
    blocks: [
      {
        nodeIds: ['node-a', 'node-b'],
        addrs: ['10.0.0.1:7001', '10.0.0.2:7001'],
        tiers: [BlockTier.BLOCK_TIER_BOTH, BlockTier.BLOCK_TIER_DRAM],
      },
      { nodeIds: ['node-c'], addrs: ['10.0.0.3:7001'], tiers: [BlockTier.BLOCK_TIER_SSD] },
      { nodeIds: [], addrs: [], tiers: [] },
    ],
  });

  assert.deepEqual(await call(raw, 'removeBlocks', { nodeId: 'node-b', namespace: 'rt', hashes: hl([3, 5, 9]) }), {
    epoch,
    removed: 1n,
  });

  const nodes = await call(raw, 'listNodes', {});
  assert.equal(nodes.epoch, epoch);
  assert.deepEqual(
    nodes.nodes.map((n: any) => [n.nodeId, n.addr, n.state, n.transports, n.stats, n.indexedBlocks]),
    [
      ['node-a', '10.0.0.1:7001', NodeState.NODE_STATE_LIVE, [TCP, VERBS], stats(300n, 1000n, 4n), 4n],
      ['node-b', '10.0.0.2:7001', NodeState.NODE_STATE_LIVE, [TCP], stats(100n, 1000n), 2n],
      ['node-c', '10.0.0.3:7001', NodeState.NODE_STATE_LIVE, [TCP], stats(200n, 1000n), 3n],
    ],
  );
  const a = nodes.nodes[0];
  assert.ok(a.registeredAtMs > 0n && a.lastHeartbeatMs >= a.registeredAtMs);
  assert.deepEqual(nodes.leader, { addr: ms.addr, epoch, sinceMs: nodes.leader.sinceMs, ha: false, replicaId: '' });

  assert.deepEqual(await call(raw, 'listNamespaces', {}), {
    epoch,
    namespaces: [{ name: 'rt', blocks: 5n, owners: 9n }],
  });
  const st = await call(raw, 'getStats', {});
  assert.deepEqual(
    [st.epoch, st.blocks, st.owners, st.namespaces, st.liveNodes, st.staleNodes, st.leaderChanges],
    [epoch, 5n, 9n, 1n, 3n, 0n, 0n],
  );
  assert.ok(st.indexBytes > 0n);

  // /health and /metrics reflect the same state
  const health = await (await fetch(`http://${ms.httpAddr}/health`)).json();
  assert.deepEqual(health, {
    ok: true,
    epoch: epoch.toString(),
    nodes: { live: 3, stale: 0 },
    blocks: 5,
    owners: 9,
    namespaces: 1,
  });
  const metrics = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
  const value = (name: string, labels = '') => {
    const line = metrics.split('\n').find((l) => l.startsWith(name + '{') && l.includes(labels));
    assert.ok(line, `metric ${name}${labels} missing:\n${metrics}`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  assert.equal(value('kvfabric_metaserver_blocks'), 5);
  assert.equal(value('kvfabric_metaserver_owners'), 9);
  assert.equal(value('kvfabric_metaserver_namespaces'), 1);
  assert.equal(value('kvfabric_metaserver_nodes', 'state="live"'), 3);
  assert.equal(value('kvfabric_metaserver_nodes', 'state="stale"'), 0);
  assert.equal(value('kvfabric_metaserver_rpc_total', 'method="insertBlocks",status="OK"'), 4);
  assert.equal(value('kvfabric_metaserver_rpc_total', 'method="heartbeat",status="OK"'), 4);
  assert.equal(value('kvfabric_metaserver_rpc_duration_seconds_count', 'method="queryPrefix"'), 3);
  assert.ok(value('kvfabric_metaserver_index_bytes') > 0);

  // unregister drops exactly its ownerships
  assert.deepEqual(await call(raw, 'unregister', { nodeId: 'node-c' }), { epoch, removed: 3n });
  assert.deepEqual(await call(raw, 'listNamespaces', {}), {
    epoch,
    namespaces: [{ name: 'rt', blocks: 4n, owners: 6n }],
  });
  for (const id of ['node-a', 'node-b']) await call(raw, 'unregister', { nodeId: id });
  assert.deepEqual(await call(raw, 'listNamespaces', {}), { epoch, namespaces: [] });
});

test("a different session cannot take a live node's address", async () => {
  await call(raw, 'heartbeat', { nodeId: 'owner-1', addr: '10.0.1.1:7001', transports: [TCP] });
  const r = await refused(raw, 'heartbeat', { nodeId: 'intruder', addr: '10.0.1.1:7001', transports: [TCP] });
  assert.equal(r.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(r.kv, 'SESSION_CONFLICT');
  assert.match(r.details, /^addr: 10\.0\.1\.1:7001 belongs to live node owner-1/);
  const nodes = await call(raw, 'listNodes', {});
  assert.deepEqual(
    nodes.nodes.map((n: { nodeId: string }) => n.nodeId),
    ['owner-1'],
  );
  await call(raw, 'unregister', { nodeId: 'owner-1' });
});

test('every bad input is refused with the right status, names the field, and changes nothing', async () => {
  await call(raw, 'heartbeat', { nodeId: 'good', addr: '10.0.2.1:7001', transports: [TCP], stats: stats(1n, 2n) });
  await call(raw, 'insertBlocks', { nodeId: 'good', namespace: 'bad-inputs', hashes: hl([1, 2, 3]) });
  const snapshot = async () => {
    const [nodes, nss, st] = await Promise.all([
      call(raw, 'listNodes', {}),
      call(raw, 'listNamespaces', {}),
      call(raw, 'getStats', {}),
    ]);
    const owners = await call(raw, 'queryOwners', { namespace: 'bad-inputs', hashes: hl([1, 2, 3, 4]) });
    // lastHeartbeatMs changes only on heartbeats, which all fail below
    return {
      nodes: nodes.nodes,
      nss,
      blocks: st.blocks,
      owners: st.owners,
      live: st.liveNodes,
      perHash: owners.blocks,
    };
  };
  const before = await snapshot();
  const INVALID = grpc.status.INVALID_ARGUMENT;
  const cases: [string, keyof RawClient & string, unknown, grpc.status, string, RegExp][] = [
    [
      'empty namespace',
      'insertBlocks',
      { nodeId: 'good', namespace: '', hashes: hl([4]) },
      INVALID,
      'INVALID_ARGUMENT',
      /^namespace: expected 1\.\.128 characters/,
    ],
    [
      'oversize namespace',
      'insertBlocks',
      { nodeId: 'good', namespace: 'n'.repeat(129), hashes: hl([4]) },
      INVALID,
      'INVALID_ARGUMENT',
      /^namespace: expected at most 128 characters, got 129/,
    ],
    [
      'namespace with a space',
      'queryPrefix',
      { namespace: 'a b', hashes: hl([1]), excludeNodeId: '' },
      INVALID,
      'INVALID_ARGUMENT',
      /^namespace: expected only characters/,
    ],
    [
      'a tier outside the enum',
      'insertBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: hl([1]), tier: 7 },
      INVALID,
      'INVALID_ARGUMENT',
      /^tier: expected BLOCK_TIER_UNSPECIFIED, _DRAM, _SSD or _BOTH, got 7/,
    ],
    [
      'hash_len 0',
      'insertBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: { packed: Buffer.alloc(32), hashLen: 0 } },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes\.hash_len: expected 1\.\.64 bytes, got 0/,
    ],
    [
      'hash_len 65',
      'insertBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: { packed: Buffer.alloc(130), hashLen: 65 } },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes\.hash_len: expected 1\.\.64 bytes, got 65/,
    ],
    [
      'packed not a multiple',
      'removeBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: { packed: Buffer.alloc(33), hashLen: 32 } },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes\.packed: expected a multiple of hash_len 32 bytes, got 33/,
    ],
    [
      'empty insert list',
      'insertBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: undefined },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes: expected at least one hash/,
    ],
    [
      'empty remove list',
      'removeBlocks',
      { nodeId: 'good', namespace: 'bad-inputs', hashes: { packed: Buffer.alloc(0), hashLen: 32 } },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes: expected at least one hash/,
    ],
    [
      'empty prefix query',
      'queryPrefix',
      { namespace: 'bad-inputs', hashes: undefined, excludeNodeId: '' },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes: expected at least one hash/,
    ],
    [
      'empty owners query',
      'queryOwners',
      { namespace: 'bad-inputs', hashes: { packed: Buffer.alloc(0), hashLen: 32 } },
      INVALID,
      'INVALID_ARGUMENT',
      /^hashes: expected at least one hash/,
    ],
    [
      'bad exclude id',
      'queryPrefix',
      { namespace: 'bad-inputs', hashes: hl([1]), excludeNodeId: 'has space' },
      INVALID,
      'INVALID_ARGUMENT',
      /^exclude_node_id: expected 1\.\.128 printable/,
    ],
    [
      'unknown session insert',
      'insertBlocks',
      { nodeId: 'ghost', namespace: 'bad-inputs', hashes: hl([4]) },
      grpc.status.NOT_FOUND,
      'SESSION_UNKNOWN',
      /^node_id: no session for "ghost"/,
    ],
    [
      'unknown session remove',
      'removeBlocks',
      { nodeId: 'ghost', namespace: 'bad-inputs', hashes: hl([1]) },
      grpc.status.NOT_FOUND,
      'SESSION_UNKNOWN',
      /^node_id: no session for "ghost"/,
    ],
    [
      'unknown session unregister',
      'unregister',
      { nodeId: 'ghost' },
      grpc.status.NOT_FOUND,
      'SESSION_UNKNOWN',
      /^node_id: no session for "ghost"/,
    ],
    [
      'empty node id',
      'insertBlocks',
      { nodeId: '', namespace: 'bad-inputs', hashes: hl([4]) },
      INVALID,
      'INVALID_ARGUMENT',
      /^node_id: expected 1\.\.128 printable/,
    ],
    [
      'empty heartbeat id',
      'heartbeat',
      { nodeId: '', addr: '10.0.2.9:7001', transports: [TCP] },
      INVALID,
      'INVALID_ARGUMENT',
      /^node_id: /,
    ],
    [
      'heartbeat bad addr',
      'heartbeat',
      { nodeId: 'good', addr: 'nowhere', transports: [TCP] },
      INVALID,
      'INVALID_ARGUMENT',
      /^addr: expected host:port, got "nowhere"/,
    ],
    [
      'heartbeat port 0',
      'heartbeat',
      { nodeId: 'good', addr: '10.0.2.1:0', transports: [TCP] },
      INVALID,
      'INVALID_ARGUMENT',
      /^addr: expected a routable host:port/,
    ],
    [
      'heartbeat unknown transport',
      'heartbeat',
      { nodeId: 'good', addr: '10.0.2.1:7001', transports: [TCP, 0] },
      INVALID,
      'INVALID_ARGUMENT',
      /^transports\[1\]: expected TRANSPORT_KIND_TCP or TRANSPORT_KIND_VERBS, got 0/,
    ],
    [
      'heartbeat used > capacity',
      'heartbeat',
      { nodeId: 'good', addr: '10.0.2.1:7001', transports: [TCP], stats: stats(3n, 2n) },
      INVALID,
      'INVALID_ARGUMENT',
      /^stats\.pool_used_bytes: expected at most stats\.pool_capacity_bytes \(2\), got "3"/,
    ],
    [
      'heartbeat SSD used > SSD capacity',
      'heartbeat',
      {
        nodeId: 'good',
        addr: '10.0.2.1:7001',
        transports: [TCP],
        stats: stats(1n, 2n, 0n, { capacity: 4n, used: 5n }),
      },
      INVALID,
      'INVALID_ARGUMENT',
      /^stats\.ssd_used_bytes: expected at most stats\.ssd_capacity_bytes \(4\), got "5"/,
    ],
  ];
  for (const [name, method, req, status, kv, message] of cases) {
    const r = await refused(raw, method, req);
    assert.equal(r.code, status, `${name}: status ${grpc.status[r.code]} (${r.details})`);
    assert.equal(r.kv, kv, name);
    assert.match(r.details, message, name);
  }
  assert.deepEqual(await snapshot(), before);
  const metrics = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
  assert.match(metrics, /kvfabric_metaserver_rpc_errors_total\{method="unregister",code="SESSION_UNKNOWN"[^}]*\} 1\n/);
  await call(raw, 'unregister', { nodeId: 'good' });
});

test('the sweep runs on its interval and is counted', async () => {
  await sleep(1300);
  const metrics = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith('kvfabric_metaserver_sweeps_total'));
  assert.ok(line && Number(line.split(' ').pop()) >= 1, `no sweep counted:\n${metrics}`);
  assert.match(metrics, /kvfabric_metaserver_sweep_duration_seconds_count/);
});

test('stale nodes are hidden from answers and listed as stale', async () => {
  await using fast = await startMetaserver({ args: ['--node-stale-secs', '1'] });
  const c = new MetaserverClient(fast.addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  try {
    await call(c, 'heartbeat', { nodeId: 'quiet', addr: '10.0.3.1:7001', transports: [TCP] });
    await call(c, 'heartbeat', { nodeId: 'chatty', addr: '10.0.3.2:7001', transports: [TCP] });
    await call(c, 'insertBlocks', { nodeId: 'quiet', namespace: 'st', hashes: hl([1, 2]) });
    await call(c, 'insertBlocks', { nodeId: 'chatty', namespace: 'st', hashes: hl([1]) });
    await sleep(1100); // quiet: over 1 s without a heartbeat; chatty heartbeats right before the queries
    await call(c, 'heartbeat', { nodeId: 'chatty', addr: '10.0.3.2:7001', transports: [TCP] });
    const prefix = await call(c, 'queryPrefix', { namespace: 'st', hashes: hl([1, 2]), excludeNodeId: '' });
    assert.deepEqual(
      prefix.nodes.map((n: { nodeId: string; prefixLen: number }) => [n.nodeId, n.prefixLen]),
      [['chatty', 1]],
    );
    const owners = await call(c, 'queryOwners', { namespace: 'st', hashes: hl([1, 2]) });
    assert.deepEqual(owners.blocks, [
      { nodeIds: ['chatty'], addrs: ['10.0.3.2:7001'], tiers: [BlockTier.BLOCK_TIER_DRAM] },
      { nodeIds: [], addrs: [], tiers: [] },
    ]);
    const nodes = await call(c, 'listNodes', {});
    assert.deepEqual(
      nodes.nodes.map((n: { nodeId: string; state: NodeState }) => [n.nodeId, n.state]),
      [
        ['quiet', NodeState.NODE_STATE_STALE],
        ['chatty', NodeState.NODE_STATE_LIVE],
      ],
    );
    const st = await call(c, 'getStats', {});
    assert.deepEqual([st.liveNodes, st.staleNodes, st.owners], [1n, 1n, 3n]);
    // a new session takes over the stale node's address and its ownerships go
    const hb = await call(c, 'heartbeat', { nodeId: 'quiet-2', addr: '10.0.3.1:7001', transports: [TCP] });
    assert.equal(hb.registered, true);
    const after = await call(c, 'getStats', {});
    assert.deepEqual([after.liveNodes, after.staleNodes, after.owners, after.blocks], [2n, 0n, 1n, 1n]);
  } finally {
    c.close();
  }
});

test('a restart brings a new epoch and an empty index', async () => {
  await using m = await startMetaserver();
  const c = new MetaserverClient(m.addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  try {
    const first = await call(c, 'heartbeat', { nodeId: 'n', addr: '10.0.4.1:7001', transports: [TCP] });
    await call(c, 'insertBlocks', { nodeId: 'n', namespace: 'ep', hashes: hl([1]) });
    c.close();
    await m.restart();
    const c2 = new MetaserverClient(m.addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    try {
      const second = await call(c2, 'heartbeat', { nodeId: 'n', addr: '10.0.4.1:7001', transports: [TCP] });
      assert.equal(second.registered, true);
      assert.notEqual(second.epoch, first.epoch);
      const st = await call(c2, 'getStats', {});
      assert.deepEqual([st.epoch, st.blocks], [second.epoch, 0n]);
    } finally {
      c2.close();
    }
  } finally {
    c.close();
  }
});

test('SIGTERM drains and exits 0', async () => {
  const m = await startMetaserver();
  const exit = await m.proc.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  const msgs = m.proc.logLines().map((l) => l.msg);
  assert.ok(msgs.includes('draining') && msgs.includes('stopped'), msgs.join(','));
});
