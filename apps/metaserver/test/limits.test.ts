// Limits on the metaserver (issue 12), against a real process: hostile field sizes are refused naming the field with
// the value echoed cut short (a 128 KiB id used to come back whole and break the channel), every message is held to
// the service's real maximum, per-node insert quotas and the index memory budget answer RESOURCE_EXHAUSTED naming
// the limit and change nothing, and an idle HTTP/2 connection is closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { MetaserverClient, TransportKind, type HashList } from '@kvfabric/proto';
import {
  METASERVER_MAX_QUERY_HASHES,
  METASERVER_MAX_REQUEST_BYTES,
  METASERVER_MAX_UPDATE_HASHES,
} from '@kvfabric/common';
import { CHANNEL_OPTIONS, ERROR_CODE_KEY } from '@kvfabric/common/rpc';
import { startMetaserver } from '@kvfabric/testkit';

type RawClient = InstanceType<typeof MetaserverClient>;
type Call = (req: any, cb: (err: grpc.ServiceError | null, res: any) => void) => unknown;

const TCP = TransportKind.TRANSPORT_KIND_TCP;
const VERBS = TransportKind.TRANSPORT_KIND_VERBS;

function call<T = any>(raw: RawClient, method: keyof RawClient & string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    // an InsertBlocks without a tier is an older node's (the generated encoder needs the field: UNSPECIFIED)
    const full = method === 'insertBlocks' ? { tier: 0, ...(req as object) } : req;
    (raw[method] as unknown as Call).call(raw, full, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

async function refused(raw: RawClient, method: keyof RawClient & string, req: unknown) {
  try {
    await call(raw, method, req);
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, kv: String(e.metadata?.get(ERROR_CODE_KEY)[0]), details: e.details };
  }
  assert.fail(`${method} unexpectedly succeeded`);
}

/** `count` distinct hashes of `len` bytes (tag in byte 0, index in bytes 1..4). */
function hl(count: number, tag = 1, len = 32, from = 0): HashList {
  const packed = Buffer.alloc(count * len);
  for (let i = 0; i < count; i++) {
    packed[i * len] = tag;
    packed.writeUInt32BE(from + i, i * len + 1);
  }
  return { packed, hashLen: len };
}

/** A client that accepts any message size, so the tests see what the server refuses, not what the client does. */
function rawClient(addr: string): RawClient {
  return new MetaserverClient(addr, grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
}

test('hostile field sizes are refused naming the field, echoed cut short, and the channel goes on', async () => {
  await using ms = await startMetaserver();
  const raw = rawClient(ms.addr);
  try {
    await call(raw, 'heartbeat', { nodeId: 'good', addr: '10.9.0.1:7001', transports: [TCP] });
    await call(raw, 'insertBlocks', { nodeId: 'good', namespace: 'lim', hashes: hl(3) });
    const before = await call(raw, 'getStats', {});
    const big = (n: number) => 'x'.repeat(n);
    const echoed = `"${'x'.repeat(64)}"…`;
    const cases: [string, keyof RawClient & string, unknown, RegExp][] = [
      [
        '128 KiB node id',
        'heartbeat',
        { nodeId: big(128 * 1024), addr: '10.9.0.2:7001', transports: [TCP] },
        /^node_id: expected 1\.\.128 printable characters without spaces, got "x{64}"… \(131072 characters\)$/,
      ],
      [
        '1 MiB node id on an insert',
        'insertBlocks',
        { nodeId: big(1 << 20), namespace: 'lim', hashes: hl(1) },
        /^node_id: .*\(1048576 characters\)$/,
      ],
      [
        '1 MiB address',
        'heartbeat',
        { nodeId: 'n-addr', addr: `${big(1 << 20)}:7001`, transports: [TCP] },
        /^addr: expected host:port of at most 261 characters, got "x{64}"… \(1048581 characters\)$/,
      ],
      [
        '1M-entry transports list',
        'heartbeat',
        { nodeId: 'n-tr', addr: '10.9.0.3:7001', transports: new Array(1_000_000).fill(TCP) },
        /^transports: expected at most 2 transport kinds, got 1000000$/,
      ],
      [
        'a transport listed twice',
        'heartbeat',
        { nodeId: 'n-tr', addr: '10.9.0.3:7001', transports: [VERBS, VERBS] },
        /^transports\[1\]: expected each kind once, got 2$/,
      ],
      [
        '128 KiB namespace',
        'queryPrefix',
        { namespace: big(128 * 1024), hashes: hl(1), excludeNodeId: '' },
        /^namespace: expected at most 128 characters, got 131072$/,
      ],
      [
        '128 KiB exclude id',
        'queryPrefix',
        { namespace: 'lim', hashes: hl(1), excludeNodeId: big(128 * 1024) },
        /^exclude_node_id: .*\(131072 characters\)$/,
      ],
      [
        'one hash over the update cap',
        'insertBlocks',
        { nodeId: 'good', namespace: 'lim', hashes: hl(METASERVER_MAX_UPDATE_HASHES + 1, 2, 8) },
        new RegExp(
          `^hashes: expected at most ${METASERVER_MAX_UPDATE_HASHES} hashes, got ${METASERVER_MAX_UPDATE_HASHES + 1}$`,
        ),
      ],
      [
        'one hash over the query cap',
        'queryOwners',
        { namespace: 'lim', hashes: hl(METASERVER_MAX_QUERY_HASHES + 1, 2, 8) },
        new RegExp(
          `^hashes: expected at most ${METASERVER_MAX_QUERY_HASHES} hashes, got ${METASERVER_MAX_QUERY_HASHES + 1}$`,
        ),
      ],
    ];
    for (const [name, method, req, message] of cases) {
      const r = await refused(raw, method, req);
      assert.equal(r.code, grpc.status.INVALID_ARGUMENT, `${name}: ${grpc.status[r.code]} ${r.details.slice(0, 200)}`);
      assert.equal(r.kv, 'INVALID_ARGUMENT', name);
      assert.match(r.details, message, name);
      assert.ok(r.details.length < 300, `${name}: ${r.details.length} characters of details`);
      if (r.details.includes('…')) assert.ok(r.details.includes(echoed), name);
      // the same channel answers the next call
      assert.equal((await call(raw, 'getStats', {})).owners, before.owners, name);
    }
    const after = await call(raw, 'listNodes', {});
    assert.deepEqual(
      after.nodes.map((n: { nodeId: string }) => n.nodeId),
      ['good'],
    );
  } finally {
    raw.close();
  }
});

test('a request larger than the largest valid one is refused before it is decoded', async () => {
  await using ms = await startMetaserver();
  const raw = rawClient(ms.addr);
  try {
    await call(raw, 'heartbeat', { nodeId: 'n', addr: '10.9.1.1:7001', transports: [TCP] });
    // accepted at the largest valid size: a query of the most 64-byte hashes
    const largest = await call(raw, 'queryPrefix', {
      namespace: 'lim',
      hashes: hl(METASERVER_MAX_QUERY_HASHES, 3, 64),
      excludeNodeId: '',
    });
    assert.deepEqual(largest.nodes, []);
    // one MiB past the maximum (and far below the 256 MiB every server used to take)
    const count = Math.ceil((METASERVER_MAX_REQUEST_BYTES + (1 << 20)) / 64);
    const r = await refused(raw, 'insertBlocks', { nodeId: 'n', namespace: 'lim', hashes: hl(count, 3, 64) });
    assert.equal(r.code, grpc.status.RESOURCE_EXHAUSTED, `${grpc.status[r.code]}: ${r.details}`);
    assert.match(r.details, /larger than max/);
    const stats = await call(raw, 'getStats', {});
    assert.equal(stats.owners, 0n);
  } finally {
    raw.close();
  }
});

test('per-node quota and index memory budget: RESOURCE_EXHAUSTED naming the limit, nothing changed', async () => {
  await using ms = await startMetaserver({ args: ['--max-blocks-per-node', '1000', '--max-index-memory', '2mib'] });
  const raw = rawClient(ms.addr);
  try {
    for (let n = 0; n < 8; n++)
      await call(raw, 'heartbeat', { nodeId: `q${n}`, addr: `10.9.2.${n}:7001`, transports: [TCP] });
    assert.equal(
      (await call(raw, 'insertBlocks', { nodeId: 'q0', namespace: 'lim', hashes: hl(1000) })).inserted,
      1000n,
    );
    const quota = await refused(raw, 'insertBlocks', { nodeId: 'q0', namespace: 'lim', hashes: hl(2, 1, 32, 999) });
    assert.equal(quota.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(quota.kv, 'QUOTA_EXCEEDED');
    assert.equal(
      quota.details,
      'max-blocks-per-node: node "q0" owns 1000 blocks and this insert adds 1, over the limit of 1000',
    );
    // re-advertising what it owns is never refused
    assert.equal((await call(raw, 'insertBlocks', { nodeId: 'q0', namespace: 'lim', hashes: hl(1000) })).inserted, 0n);

    // other nodes fill the index up to the 2 MiB budget in their own namespaces
    let budget: { code: grpc.status; kv: string; details: string } | undefined;
    let inserted = 1000n;
    for (let n = 1; n < 8 && !budget; n++) {
      for (let from = 0; from < 1000 && !budget; from += 250) {
        try {
          const r = await call(raw, 'insertBlocks', {
            nodeId: `q${n}`,
            namespace: `lim-${n}`,
            hashes: hl(250, n, 64, from),
          });
          inserted += r.inserted;
        } catch (err) {
          const e = err as grpc.ServiceError;
          budget = { code: e.code, kv: String(e.metadata.get(ERROR_CODE_KEY)[0]), details: e.details };
        }
      }
    }
    assert.ok(budget, 'the budget was reached');
    assert.equal(budget.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(budget.kv, 'QUOTA_EXCEEDED');
    assert.match(
      budget.details,
      /^max-index-memory: the index holds \d+ bytes and this insert needs up to \d+ more, over the limit of 2097152 bytes$/,
    );
    const stats = await call(raw, 'getStats', {});
    assert.equal(stats.owners, inserted, 'the refused insert added nothing');
    assert.ok(stats.indexBytes <= 2n * 1024n * 1024n, `index holds ${stats.indexBytes} bytes`);
    const metrics = await (await fetch(`http://${ms.httpAddr}/metrics`)).text();
    assert.match(
      metrics,
      /kvfabric_metaserver_rpc_errors_total\{method="insertBlocks",code="QUOTA_EXCEEDED"[^}]*\} 2\n/,
    );
  } finally {
    raw.close();
  }
});

test('an HTTP/2 connection with no call in flight is closed after --max-connection-idle-secs', async () => {
  await using ms = await startMetaserver({ args: ['--max-connection-idle-secs', '1'] });
  const session = http2.connect(`http://${ms.addr}`);
  try {
    const closed = await new Promise<{ goaway: number | undefined }>((resolve, reject) => {
      let goaway: number | undefined;
      const timer = setTimeout(() => reject(new Error('the idle connection was never closed')), 60_000);
      session.on('goaway', (code) => (goaway = code));
      session.on('error', () => {}); // a reset after the GOAWAY is still a close
      session.on('close', () => {
        clearTimeout(timer);
        resolve({ goaway });
      });
    });
    assert.equal(closed.goaway, http2.constants.NGHTTP2_NO_ERROR, 'closed by the server with a GOAWAY');
  } finally {
    session.destroy();
  }
  // a client that was idle simply reconnects on its next call
  const raw = rawClient(ms.addr);
  try {
    assert.equal((await call(raw, 'getStats', {})).owners, 0n);
  } finally {
    raw.close();
  }
});
