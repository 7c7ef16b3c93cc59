// `kvfabric` spawned as a process against a spawned kvfabric-metaserver: exact JSON and table output, exit codes
// 0/1/2/3. State is created through packages/client (heartbeats make node sessions, then inserts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MetaserverClient } from '@kvfabric/client';
import * as grpc from '@grpc/grpc-js';
import { KvError, TIER_SSD, hashTokenBlocks, requestExtraKeys } from '@kvfabric/common';
import { bindServer, errorToStatus } from '@kvfabric/common/rpc';
import { MetaserverService, TransportKind } from '@kvfabric/proto';
import { freePort, runCli, startMetaserver, type MetaserverHandle } from '@kvfabric/testkit';

const NODE_A = { nodeId: 'node-a', addr: '127.0.0.1:7101' };
const NODE_B = { nodeId: 'node-b', addr: '127.0.0.1:7102' };
const h = (byte: number) => Buffer.alloc(32, byte);
const hex = (byte: number) => h(byte).toString('hex');
const TOKENS = Array.from({ length: 42 }, (_, i) => (i * 7919) % 32000); // 10 full blocks of 4, 2 left over

/** An in-test gRPC server speaking the Metaserver service with the given handlers (UNIMPLEMENTED otherwise). */
async function fakeMetaserver(handlers: Record<string, (call: unknown, cb: grpc.sendUnaryData<unknown>) => void>) {
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(MetaserverService)) {
    impl[name] = ((call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      handlers[name]
        ? handlers[name]!(call, cb)
        : cb({ code: grpc.status.UNIMPLEMENTED, details: name })) as grpc.UntypedHandleCall;
  }
  server.addService(MetaserverService, impl);
  const port = await bindServer(server, '127.0.0.1:0');
  return { addr: `127.0.0.1:${port}`, [Symbol.asyncDispose]: async () => void server.forceShutdown() };
}

let ms: MetaserverHandle;
let client: MetaserverClient;
let epoch: string;
let dir: string;
let tokensFile: string;
let tokenHashes: Buffer[];

/** Runs the CLI against the test metaserver; asserts nothing leaks to stderr on success. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const res = await runCli([...args, '--metaserver-addr', ms.addr], { env: { PYTHONHASHSEED: undefined, ...env } });
  return res;
}

async function json(args: string[]): Promise<any> {
  const res = await cli([...args, '--output', 'json']);
  assert.equal(res.code, 0, `kvfabric ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  assert.equal(res.stderr, '');
  return JSON.parse(res.stdout);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kvf-cli-'));
  tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify(TOKENS));
  tokenHashes = hashTokenBlocks(TOKENS, 4, { seed: '0' });
  // The nodes heartbeat once, here: they must not go stale however long the CLI processes take to start.
  ms = await startMetaserver({ logLevel: 'warn', args: ['--node-stale-secs', '3600'] });
  client = new MetaserverClient(ms.addr);
  const hb = await client.heartbeat({
    ...NODE_A,
    transports: [TransportKind.TRANSPORT_KIND_TCP],
    stats: { poolCapacityBytes: 16n << 30n, poolUsedBytes: 3n << 29n, blocks: 5n },
  });
  epoch = hb.epoch.toString();
  await client.heartbeat({
    ...NODE_B,
    transports: [TransportKind.TRANSPORT_KIND_TCP],
    stats: {
      poolCapacityBytes: 1n << 30n,
      poolUsedBytes: 0n,
      blocks: 2n,
      ssdCapacityBytes: 2n << 40n,
      ssdUsedBytes: 1n << 39n,
    },
  });
  assert.equal((await client.insertBlocks(NODE_A.nodeId, 'model-a', [h(1), h(2), h(3)])).inserted, 3n);
  // node B holds its copies on SSD only
  const onSsd = { tier: TIER_SSD } as const;
  assert.equal((await client.insertBlocks(NODE_B.nodeId, 'model-a', [h(1), h(2)], onSsd)).inserted, 2n);
  assert.equal((await client.insertBlocks(NODE_A.nodeId, 'model-b', [h(9)])).inserted, 1n);
  // the tokens' first 6 blocks on node B
  assert.equal((await client.insertBlocks(NODE_B.nodeId, 'model-tok', tokenHashes.slice(0, 6))).inserted, 6n);
});

after(async () => {
  client?.close();
  await ms?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('JSON output', () => {
  test('nodes', async () => {
    const out = await json(['nodes']);
    assert.equal(out.epoch, epoch);
    assert.equal(out.nodes.length, 2);
    const [a, b] = out.nodes;
    assert.deepEqual(
      {
        addr: a.addr,
        state: a.state,
        blocks: a.blocks,
        nodeId: a.nodeId,
        transports: a.transports,
        residentBlocks: a.residentBlocks,
        poolUsedBytes: a.poolUsedBytes,
        poolCapacityBytes: a.poolCapacityBytes,
      },
      {
        addr: NODE_A.addr,
        state: 'live',
        blocks: 4,
        nodeId: 'node-a',
        transports: ['tcp'],
        residentBlocks: 5,
        poolUsedBytes: 1610612736,
        poolCapacityBytes: 17179869184,
      },
    );
    assert.deepEqual(
      { addr: b.addr, state: b.state, blocks: b.blocks, ssd: [b.ssdUsedBytes, b.ssdCapacityBytes, a.ssdCapacityBytes] },
      { addr: NODE_B.addr, state: 'live', blocks: 8, ssd: [2 ** 39, 2 ** 41, 0] },
    );
    assert.deepEqual(
      { ...out.leader, since: undefined, forSecs: undefined },
      { addr: ms.addr, epoch, since: undefined, forSecs: undefined, ha: false, replicaId: '' },
    );
    assert.match(out.leader.since, /^\d{4}-\d\d-\d\dT/);
    assert.match(a.lastHeartbeatAt, /^\d{4}-\d\d-\d\dT/);
  });

  test('locate --hashes: per-node prefix lengths, longest first', async () => {
    const out = await json(['locate', '--namespace', 'model-a', '--hashes', [1, 2, 3, 4].map(hex).join(',')]);
    assert.equal(out.namespace, 'model-a');
    assert.equal(out.queried, 4);
    assert.deepEqual(
      out.nodes.map((n: any) => ({ addr: n.addr, prefixLen: n.prefixLen })),
      [
        { addr: NODE_A.addr, prefixLen: 3 },
        { addr: NODE_B.addr, prefixLen: 2 },
      ],
    );
    assert.equal(out.blocks, undefined);
  });

  test('locate --blocks: the owners of every block', async () => {
    const out = await json(['locate', '--namespace', 'model-a', '--hashes', [2, 3, 4].map(hex).join(','), '--blocks']);
    assert.equal(out.queried, 3);
    assert.deepEqual(
      out.nodes.map((n: any) => [n.addr, n.prefixLen, n.ssdBlocks]),
      [
        [NODE_A.addr, 2, 0],
        [NODE_B.addr, 1, 1],
      ],
    );
    // tiers[i] is where owners[i] holds the block
    assert.deepEqual(
      out.blocks.map((b: any) => ({ hash: b.hash, owners: b.owners, tiers: b.tiers })),
      [
        { hash: hex(2), owners: [NODE_A.addr, NODE_B.addr], tiers: ['dram', 'ssd'] },
        { hash: hex(3), owners: [NODE_A.addr], tiers: ['dram'] },
        { hash: hex(4), owners: [], tiers: [] },
      ],
    );
  });

  test('locate in another namespace sees nothing of model-a', async () => {
    const out = await json(['locate', '--namespace', 'model-b', '--hashes', hex(1)]);
    assert.deepEqual(out.nodes, []);
    assert.equal(out.queried, 1);
  });

  test('locate --tokens hashes like block-hash.ts (seed from --hash-seed or PYTHONHASHSEED)', async () => {
    const out = await json([
      'locate',
      '--namespace',
      'model-tok',
      '--tokens',
      tokensFile,
      '--block-size',
      '4',
      '--hash-seed',
      '0',
      '--blocks',
    ]);
    assert.equal(out.queried, 10);
    assert.deepEqual(
      out.nodes.map((n: any) => [n.addr, n.prefixLen]),
      [[NODE_B.addr, 6]],
    );
    assert.deepEqual(
      out.blocks.map((b: any) => b.hash),
      tokenHashes.map((x) => x.toString('hex')),
    );
    const viaEnv = await runCli(
      [
        'locate',
        '--namespace',
        'model-tok',
        '--tokens',
        tokensFile,
        '--block-size',
        '4',
        '--output',
        'json',
        '--metaserver-addr',
        ms.addr,
      ],
      { env: { PYTHONHASHSEED: '0' } },
    );
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(JSON.parse(viaEnv.stdout).nodes[0].prefixLen, 6);
  });

  test('stats and namespaces', async () => {
    const stats = await json(['stats']);
    assert.equal(stats.epoch, epoch);
    assert.deepEqual(
      {
        blocks: stats.blocks,
        owners: stats.owners,
        namespaces: stats.namespaces,
        liveNodes: stats.liveNodes,
        staleNodes: stats.staleNodes,
      },
      { blocks: 10, owners: 12, namespaces: 3, liveNodes: 2, staleNodes: 0 },
    );
    assert.ok(stats.indexBytes > 0);
    assert.equal(stats.leader.addr.length > 0, true);
    const ns = await json(['namespaces']);
    assert.deepEqual(ns.namespaces, [
      { name: 'model-a', blocks: 3, owners: 5 },
      { name: 'model-b', blocks: 1, owners: 1 },
      { name: 'model-tok', blocks: 6, owners: 6 },
    ]);
  });

  test('health: gRPC round trip and GET /health', async () => {
    const out = await json(['health', '--http-addr', ms.httpAddr]);
    assert.equal(out.ok, true);
    assert.equal(out.addr, ms.addr);
    assert.equal(out.epoch, epoch);
    assert.equal(out.liveNodes, 2);
    assert.equal(out.http.status, 200);
    assert.equal(out.http.addr, ms.httpAddr);
    assert.ok(out.rttMs >= 0);
  });

  test('hash equals block-hash.ts and needs no server', async () => {
    const res = await runCli([
      'hash',
      '--tokens',
      tokensFile,
      '--block-size',
      '4',
      '--hash-seed',
      '0',
      '--output',
      'json',
      '--metaserver-addr',
      `127.0.0.1:${await freePort()}`,
    ]);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.deepEqual(
      out.hashes,
      tokenHashes.map((x) => x.toString('hex')),
    );
    assert.equal(out.hashes.length, 10);
    assert.deepEqual(
      { blockSize: out.blockSize, tokens: out.tokens, seed: out.seed },
      { blockSize: 4, tokens: 42, seed: '0' },
    );
    const seeded = await runCli(['hash', '--tokens', tokensFile, '--block-size', '16', '--output', 'json'], {
      env: { PYTHONHASHSEED: 'abc' },
    });
    assert.deepEqual(
      JSON.parse(seeded.stdout).hashes,
      hashTokenBlocks(TOKENS, 16, { seed: 'abc' }).map((x) => x.toString('hex')),
    );
    // unset: vLLM's fixed default root; set but empty: the seed "" (vLLM reads os.getenv, not None)
    const unseeded = await runCli(['hash', '--tokens', tokensFile, '--block-size', '16', '--output', 'json'], {
      env: { PYTHONHASHSEED: undefined },
    });
    assert.equal(unseeded.code, 0);
    assert.deepEqual(
      JSON.parse(unseeded.stdout).hashes,
      hashTokenBlocks(TOKENS, 16, { seed: 'vllm-none-hash' }).map((x) => x.toString('hex')),
    );
    assert.equal(JSON.parse(unseeded.stdout).seedFrom, 'default');
    assert.match(unseeded.stderr, /^kvfabric hash: warning: no --hash-seed or PYTHONHASHSEED: .*"vllm-none-hash"/);
    for (const [args, env] of [
      [[], { PYTHONHASHSEED: '' }],
      [['--hash-seed', ''], { PYTHONHASHSEED: 'abc' }],
    ] as const) {
      const empty = await runCli(['hash', '--tokens', tokensFile, '--block-size', '16', '--output', 'json', ...args], {
        env,
      });
      assert.equal(empty.code, 0, empty.stderr);
      assert.equal(empty.stderr, '');
      assert.deepEqual(
        JSON.parse(empty.stdout).hashes,
        hashTokenBlocks(TOKENS, 16, { seed: '' }).map((x) => x.toString('hex')),
      );
    }
    const keyed = await runCli(
      [
        'hash',
        '--tokens',
        tokensFile,
        '--block-size',
        '16',
        '--hash-seed',
        '0',
        '--cache-salt',
        'salt',
        '--lora-name',
        'ad',
        '--lora-path',
        '/ad',
        '--output',
        'json',
      ],
      {},
    );
    assert.equal(keyed.code, 0, keyed.stderr);
    assert.deepEqual(
      JSON.parse(keyed.stdout).hashes,
      hashTokenBlocks(TOKENS, 16, {
        seed: '0',
        extraKeys: requestExtraKeys({ lora: { name: 'ad', path: '/ad' }, cacheSalt: 'salt' }),
      }).map((x) => x.toString('hex')),
    );
  });
});

describe('table output', () => {
  test('nodes: aligned columns, human sizes', async () => {
    const res = await cli(['nodes']);
    assert.equal(res.code, 0, res.stderr);
    const [head, blank, ...lines] = res.stdout.trimEnd().split('\n');
    assert.match(
      head!,
      new RegExp(
        `^leader ${ms.addr.replace(/\./g, '\\.')} \\(single, no HA\\), epoch ${epoch}, since \\d{4}-\\d\\d-\\d\\dT\\S+Z \\([^)]+ ago\\)$`,
      ),
    );
    assert.equal(blank, '');
    assert.equal(lines.length, 3);
    assert.match(
      lines[0]!,
      /^ADDR\s+STATE\s+BLOCKS\s+POOL USED\s+POOL SIZE\s+SSD USED\/SIZE\s+TRANSPORTS\s+LAST HEARTBEAT\s+NODE ID$/,
    );
    assert.match(lines[1]!, /^127\.0\.0\.1:7101\s+live\s+4\s+1\.50 GiB\s+16\.0 GiB\s+-\s+tcp\s+\S+ ago\s+node-a$/);
    assert.match(
      lines[2]!,
      /^127\.0\.0\.1:7102\s+live\s+8\s+0 B\s+1\.00 GiB\s+512 GiB\/2\.00 TiB\s+tcp\s+\S+ ago\s+node-b$/,
    );
    // right-aligned numbers end under the end of their header; left-aligned columns start together
    const end = lines[0]!.indexOf('BLOCKS') + 'BLOCKS'.length;
    for (const line of lines.slice(1)) assert.equal(line[end - 1] !== ' ' && line[end] === ' ', true, line);
    const state = lines[0]!.indexOf('STATE');
    for (const line of lines.slice(1)) assert.equal(line.slice(state, state + 4), 'live');
  });

  test('locate --blocks', async () => {
    const res = await cli(['locate', '--namespace', 'model-a', '--hashes', [1, 2, 3].map(hex).join(','), '--blocks']);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.split('\n');
    assert.equal(lines[0], 'namespace model-a: 3 hashes queried, longest prefix 3 on 2 node(s)');
    assert.match(lines[2]!, /^ADDR\s+PREFIX\s+ON SSD ONLY\s/);
    assert.match(lines[3]!, /^127\.0\.0\.1:7101\s+3\s+0\s/);
    assert.match(lines[4]!, /^127\.0\.0\.1:7102\s+2\s+2\s/);
    // one row per (block, owner), with its tier
    const rows = lines.slice(lines.findIndex((l) => /^BLOCK\s+HASH\s+OWNER\s+TIER$/.test(l)) + 1).filter(Boolean);
    assert.deepEqual(
      rows.map((l) => l.trim().split(/\s+/)),
      [
        ['0', hex(1), '127.0.0.1:7101', 'dram'],
        ['0', hex(1), '127.0.0.1:7102', 'ssd'],
        ['1', hex(2), '127.0.0.1:7101', 'dram'],
        ['1', hex(2), '127.0.0.1:7102', 'ssd'],
        ['2', hex(3), '127.0.0.1:7101', 'dram'],
      ],
    );
  });

  test('stats and namespaces', async () => {
    const stats = await cli(['stats']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, new RegExp(`^epoch\\s+${epoch}$`, 'm'));
    assert.match(stats.stdout, /^owners\s+12$/m);
    assert.match(stats.stdout, /^nodes\s+2 live, 0 stale$/m);
    assert.match(
      stats.stdout,
      new RegExp(
        `^leader\\s+${ms.addr.replace(/\./g, '\\.')} \\(single, no HA\\), epoch ${epoch}, since \\S+ \\([^)]+ ago\\); 0 leader changes$`,
        'm',
      ),
    );
    const ns = await cli(['namespaces']);
    assert.equal(
      ns.stdout,
      'NAMESPACE  BLOCKS  OWNERS\nmodel-a         3       5\nmodel-b         1       1\nmodel-tok       6       6\n',
    );
  });
});

describe('exit codes', () => {
  test('bad flags → 2 with one line naming the flag, nothing on stdout', async () => {
    // hostile token files: nesting deeper than any stack, and an item too long to echo whole
    const nested = join(dir, 'nested.json');
    writeFileSync(nested, '['.repeat(200_000) + ']'.repeat(200_000));
    const longItem = join(dir, 'long-item.json');
    writeFileSync(longItem, JSON.stringify([1, 't'.repeat(1 << 20)]));
    const cases: [string[], RegExp][] = [
      [['nodes', '--output', 'yaml'], /--output: expected one of table\|json, got "yaml"/],
      [['nodes', '--bogus', '1'], /--bogus: unknown flag/],
      [['locate', '--namespace', 'model-a'], /--hashes or --tokens: required/],
      [['locate', '--namespace', 'bad ns', '--hashes', 'aa'], /--namespace: expected only characters/],
      [
        ['locate', '--namespace', 'ns', '--hashes', 'zz'],
        /--hashes\[0\]: expected an even number of hex digits, got "zz"/,
      ],
      [['locate', '--namespace', 'ns', '--hashes', 'aabb,cc'], /--hashes\[1\]: expected 2 bytes like the first hash/],
      [
        ['locate', '--namespace', 'ns', '--tokens', tokensFile, '--block-size', '4', '--lora-name', 'a'],
        /--lora-path: required with --lora-name/,
      ],
      [['hash', '--tokens', tokensFile, '--block-size', '0'], /--block-size: expected at least 1, got "0"/],
      [
        ['hash', '--tokens', join(dir, 'missing.json'), '--block-size', '4'],
        /--tokens: cannot read .*missing\.json: ENOENT/,
      ],
      [
        ['hash', '--tokens', tokensFile, '--block-size', '64'],
        /--tokens: .* holds 42 tokens, fewer than one block of --block-size 64/,
      ],
      [
        ['hash', '--tokens', nested, '--block-size', '4'],
        /^kvfabric hash: --tokens: expected non-negative integer token ids in .*nested\.json, item 0 is an array of 1 items \(see kvfabric hash --help\)\n$/,
      ],
      [
        ['hash', '--tokens', longItem, '--block-size', '4'],
        /^kvfabric hash: --tokens: expected non-negative integer token ids in .*long-item\.json, item 1 is "t{64}"… \(1048576 characters\) \(see kvfabric hash --help\)\n$/,
      ],
      [['frobnicate'], /unknown command "frobnicate"/],
    ];
    await Promise.all(
      cases.map(async ([args, pattern]) => {
        const res = await cli(args);
        assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
        assert.match(res.stderr, pattern, args.join(' '));
        assert.equal(res.stderr.trimEnd().split('\n').length, 1, res.stderr);
        assert.equal(res.stdout, '');
      }),
    );
    const addr = await runCli(['nodes', '--metaserver-addr', 'nowhere']);
    assert.equal(addr.code, 2);
    assert.match(addr.stderr, /--metaserver-addr: expected host:port, got "nowhere"/);
    // the etcd TLS flags go with an etcd:// address, a client certificate with its key and the CA, files readable
    const etcd = 'etcd://127.0.0.1:2379';
    const etcdCases: [string[], RegExp][] = [
      [
        ['nodes', '--etcd-ca', 'ca.pem'],
        /^kvfabric nodes: etcd-ca: only with an etcd:\/\/host:port\[\/prefix\] --metaserver-addr \(see/,
      ],
      [
        ['nodes', '--metaserver-addr', etcd, '--etcd-cert', 'c.pem', '--etcd-key', 'k.pem'],
        /^kvfabric nodes: etcd-ca: required with etcd-cert and etcd-key/,
      ],
      [
        ['nodes', '--metaserver-addr', etcd, '--etcd-ca', join(dir, 'missing-ca.pem')],
        /^kvfabric nodes: etcd-ca: cannot read .*missing-ca\.pem: ENOENT\n$/,
      ],
    ];
    for (const [args, pattern] of etcdCases) {
      const res = await runCli(args);
      assert.deepEqual([res.code, res.stdout], [2, ''], `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, pattern, args.join(' '));
    }
  });

  test('nobody listening → 3 with a one-line message naming the address', async () => {
    const port = await freePort();
    for (const command of [
      ['nodes'],
      ['stats', '--output', 'json'],
      ['locate', '--namespace', 'ns', '--hashes', 'aa'],
    ]) {
      const res = await runCli([...command, '--metaserver-addr', `127.0.0.1:${port}`]);
      assert.equal(res.code, 3, res.stderr);
      assert.equal(res.stdout, '');
      assert.equal(
        res.stderr,
        `kvfabric ${command[0]}: cannot connect to metaserver at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
      );
    }
  });

  test('the address comes from KVFABRIC_METASERVER_ADDR when the flag is absent', async () => {
    const port = await freePort();
    const res = await runCli(['nodes'], { env: { KVFABRIC_METASERVER_ADDR: `127.0.0.1:${port}` } });
    assert.equal(res.code, 3);
    assert.match(res.stderr, new RegExp(`at 127\\.0\\.0\\.1:${port}:`));
    const ok = await runCli(['stats', '--output', 'json'], { env: { KVFABRIC_METASERVER_ADDR: ms.addr } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).epoch, epoch);
  });

  test('a server error → 1 with the code; a slow answer → 1 (deadline), not 3', async () => {
    await using fake = await fakeMetaserver({
      getStats: (_call, cb) => cb(errorToStatus(new KvError('INTERNAL', 'index exploded'))),
      listNodes: () => {}, // never answers
    });
    const res = await runCli(['stats', '--metaserver-addr', fake.addr]);
    assert.equal(res.code, 1, res.stderr);
    assert.equal(res.stdout, '');
    assert.equal(res.stderr, 'kvfabric stats: INTERNAL: index exploded\n');
    const slow = await runCli(['nodes', '--metaserver-addr', fake.addr, '--timeout-secs', '0.5']);
    assert.equal(slow.code, 1, slow.stderr);
    assert.match(slow.stderr, /^kvfabric nodes: TRANSPORT_TIMEOUT: .+\n$/);
  });

  test('a port that does not speak gRPC → 3 (cannot connect), one line', async () => {
    const res = await runCli(['nodes', '--metaserver-addr', ms.httpAddr]);
    assert.equal(res.code, 3, res.stderr);
    assert.match(res.stderr, new RegExp(`^kvfabric nodes: cannot connect to metaserver at ${ms.httpAddr}: .+\\n$`));
  });

  test('--help → 0 on stdout', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    for (const name of ['nodes', 'locate', 'stats', 'namespaces', 'health', 'hash'])
      assert.match(top.stdout, new RegExp(`^  ${name} `, 'm'));
    const sub = await runCli(['locate', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--namespace <string>/);
    assert.match(sub.stdout, /--metaserver-addr <string>.*KVFABRIC_METASERVER_ADDR/);
    const none = await runCli([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^Usage: kvfabric <command>/);
  });
});

test('a node unseen for --node-stale-secs shows as stale and leaves locate answers', async () => {
  await using stale = await startMetaserver({ logLevel: 'warn', args: ['--node-stale-secs', '1'] });
  const c = new MetaserverClient(stale.addr);
  try {
    await c.heartbeat({ nodeId: 'gone', addr: '127.0.0.1:7201' });
    await c.insertBlocks('gone', 'ns', [h(1)]);
    // live right now (checked in-process: spawning the CLI can take longer than the 1 s stale window)
    assert.deepEqual(
      (await c.queryPrefix('ns', [h(1)])).nodes.map((n) => n.prefixLen),
      [1],
    );
    await sleep(1600);
    // the session is forgotten only after 10 × stale: run the three CLI calls together
    const args = ['--metaserver-addr', stale.addr];
    const [nodes, gone, table] = await Promise.all([
      runCli(['nodes', '--output', 'json', ...args]),
      runCli(['locate', '--namespace', 'ns', '--hashes', hex(1), '--output', 'json', ...args]),
      runCli(['nodes', ...args]),
    ]);
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.deepEqual(
      JSON.parse(nodes.stdout).nodes.map((n: any) => [n.addr, n.state, n.blocks]),
      [['127.0.0.1:7201', 'stale', 1]],
    );
    assert.deepEqual(JSON.parse(gone.stdout).nodes, []);
    assert.match(table.stdout, /^127\.0\.0\.1:7201\s+stale\s+1\s/m);
  } finally {
    c.close();
  }
});
