// `npm start`: a local kvfabric cluster on loopback doing real work. A metaserver, three nodes (tcp transport)
// and simulated engines replaying a multi-turn shared-prefix chat workload, each turn on a random engine, so
// prefixes are hit locally, pulled from peers, or computed. Prints a summary table and where blocks live.
//   npm start [-- --requests N --keep]
import { dirname } from 'node:path';
import { startCluster, runCli, tlsArgs, type Cluster } from '@kvfabric/testkit';
import { KvEngine, KvRegion } from '@kvfabric/client';
import { hashTokenBlocks, formatBytes, packHashes } from '@kvfabric/common';
import { createContext, formatTable, nowSeconds } from '../harness.js';
import { chatWorkload, prng } from './workload.js';

const BLOCK_TOKENS = 16;
const LAYERS = 16;
const SEGMENT_BYTES = 8 * 1024; // one layer's K (or V) for one 16-token block: 256 KiB per block in all
const REGION_BLOCKS = 256;
const NODES = 3;
const ENGINES_PER_NODE = 2;
const NAMESPACE = 'demo/llama-like-16l-fp16-tp1-b16';
const DEMO_HASH_SEED = 'kvfabric-demo';

interface Tally {
  requests: number;
  blocksQueried: number;
  local: number;
  remote: number;
  miss: number;
  saved: number;
  verified: number;
  corrupt: number;
  remoteSeconds: number;
  tokensAvoided: number;
  tokensTotal: number;
}

/** The "KV" of a block: its hash repeated, so any load can be checked against what was computed. */
function fillBlock(buf: Buffer, hash: Buffer): void {
  buf.fill(hash);
}

async function main(argv: string[]): Promise<number> {
  const keep = argv.includes('--keep');
  const requestsFlag = argv.indexOf('--requests');
  const conversations = 24;
  const turns = requestsFlag >= 0 ? Math.max(1, Math.ceil(Number(argv[requestsFlag + 1]) / conversations)) : 6;
  const ctx = createContext(false);
  console.log(
    `kvfabric demo: 1 metaserver, ${NODES} nodes (tcp transport), ${NODES * ENGINES_PER_NODE} engines, ${conversations} conversations x ${turns} turns`,
  );

  // mutual TLS everywhere, with certificates from a development CA made for this run (scripts/gen-certs.sh)
  await using cluster: Cluster = await startCluster({
    nodes: NODES,
    tls: true,
    node: { poolSize: '512mib', args: ['--heartbeat-interval-secs', '1'] },
  });
  const cliTls = tlsArgs(cluster.metaserver.tls!.client);
  cluster.nodes.forEach((n, i) =>
    console.log(`  node ${i}: peer ${n.addr}  engine socket ${n.engineSocket}  http ${n.httpAddr}`),
  );
  console.log(`  metaserver: ${cluster.metaserver.addr}  http ${cluster.metaserver.httpAddr}`);
  console.log(`  mutual TLS: certificates in ${dirname(cluster.metaserver.tls!.client.tlsCa)}`);

  const layout = { numLayers: LAYERS, kvSplit: true, bytesPerLayerBlock: SEGMENT_BYTES, numBlocks: REGION_BLOCKS };
  const engines: { kv: KvEngine; region: KvRegion; node: number }[] = [];
  for (let n = 0; n < NODES; n++) {
    for (let e = 0; e < ENGINES_PER_NODE; e++) {
      const region = KvRegion.create({ layout });
      const kv = await KvEngine.register({
        target: cluster.nodes[n]!.engineSocket,
        namespace: NAMESPACE,
        region,
        instanceId: `demo-n${n}-e${e}`,
      });
      engines.push({ kv, region, node: n });
    }
  }
  const blockBytes = engines[0]!.region.geometry.blockBytes;

  const requests = chatWorkload({
    conversations,
    turns,
    systemPrompts: 3,
    systemPromptTokens: 1024,
    userTokens: [32, 160],
    replyTokens: [64, 256],
    seed: 7,
  });
  const pick = prng(11);
  const t: Tally = {
    requests: 0,
    blocksQueried: 0,
    local: 0,
    remote: 0,
    miss: 0,
    saved: 0,
    verified: 0,
    corrupt: 0,
    remoteSeconds: 0,
    tokensAvoided: 0,
    tokensTotal: 0,
  };
  const scratch = Buffer.alloc(blockBytes);
  const bar = ctx.progress('requests', requests.length);
  const started = nowSeconds();
  let lastHashes: Buffer[] = [];
  for (const req of requests) {
    const engine = engines[Math.floor(pick() * engines.length)]!;
    const hashes = hashTokenBlocks(req.tokens, BLOCK_TOKENS, { seed: DEMO_HASH_SEED }).slice(0, REGION_BLOCKS);
    const q0 = nowSeconds();
    const answer = await engine.kv.query(hashes, {
      requestId: `c${req.conversation}-t${req.turn}-${engine.kv.instanceId}`,
    });
    if (answer.breakdown.remote > 0) t.remoteSeconds += nowSeconds() - q0;
    const ids = hashes.map((_, i) => i);
    if (answer.hits > 0) {
      await engine.kv.load(answer.leaseId, ids.slice(0, answer.hits));
      for (let b = 0; b < answer.hits; b++) {
        fillBlock(scratch, hashes[b]!);
        if (engine.region.readBlock(b).equals(scratch)) t.verified++;
        else t.corrupt++;
      }
    }
    // "Prefill" the blocks that missed, then save every full block of the context.
    for (let b = answer.hits; b < hashes.length; b++) {
      fillBlock(scratch, hashes[b]!);
      engine.region.writeBlock(b, scratch);
    }
    const missed = ids.slice(answer.hits);
    if (missed.length > 0) {
      const saved = await engine.kv.save(missed, packHashes(hashes.slice(answer.hits)));
      t.saved += saved.stored;
    }
    t.requests++;
    t.blocksQueried += hashes.length;
    t.local += answer.breakdown.local;
    t.remote += answer.breakdown.remote + answer.breakdown.ssd;
    t.miss += hashes.length - answer.hits;
    t.tokensAvoided += answer.hits * BLOCK_TOKENS;
    t.tokensTotal += req.tokens.length;
    lastHashes = hashes;
    bar.tick();
  }
  bar.done();
  const elapsed = nowSeconds() - started;

  const pulledBytes = t.remote * blockBytes;
  console.log(
    '\n' +
      formatTable({
        columns: ['measure', 'value'],
        rows: [
          ['requests', t.requests],
          ['blocks queried', t.blocksQueried],
          ['blocks saved', t.saved],
          ['hits: local pool', t.local],
          ['hits: remote pull', t.remote],
          ['misses (prefilled)', t.miss],
          ['hit rate', `${((100 * (t.local + t.remote)) / Math.max(1, t.blocksQueried)).toFixed(1)}%`],
          ['bytes pulled from peers', formatBytes(pulledBytes)],
          [
            'pull GB/s (time in queries with a pull)',
            t.remoteSeconds > 0 ? Number((pulledBytes / t.remoteSeconds / 1e9).toFixed(2)) : 0,
          ],
          [
            'prefill tokens avoided',
            `${t.tokensAvoided.toLocaleString('en-US')} of ${t.tokensTotal.toLocaleString('en-US')}`,
          ],
          ['loaded blocks verified byte-exact', `${t.verified} (corrupt: ${t.corrupt})`],
          ['wall time', `${elapsed.toFixed(1)} s`],
        ],
      }),
  );

  const hex = lastHashes
    .slice(0, 8)
    .map((h) => h.toString('hex'))
    .join(',');
  const args = ['locate', '--metaserver-addr', cluster.metaserver.addr, '--namespace', NAMESPACE, '--hashes', hex];
  console.log(`\n$ kvfabric ${args.join(' ').replace(hex, hex.slice(0, 24) + '...')}`);
  const located = await runCli([...args, ...cliTls]);
  process.stdout.write(located.stdout || located.stderr);
  const nodes = await runCli(['nodes', '--metaserver-addr', cluster.metaserver.addr, ...cliTls]);
  console.log(
    `\n$ kvfabric nodes --metaserver-addr ${cluster.metaserver.addr} --tls-cert ... --tls-key ... --tls-ca ...`,
  );
  process.stdout.write(nodes.stdout || nodes.stderr);

  for (const e of engines) {
    await e.kv.close();
    e.region.close();
  }
  if (keep) {
    console.log(
      `\ncluster kept running; try: npx kvfabric locate --metaserver-addr ${cluster.metaserver.addr} --namespace ${NAMESPACE} --hashes ${hex} --blocks ${cliTls.join(' ')}\nCtrl-C to stop.`,
    );
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
  return t.corrupt === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  },
);
