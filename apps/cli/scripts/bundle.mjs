// Build step after `tsc -b`: bundles dist/main.js with everything it imports into dist/kvfabric.cjs (esbuild), then
// writes dist/kvfabric.cache, the V8 code cache of that bundle after a training run: the CLI's own commands against
// a loopback gRPC server (port chosen by the kernel) that answers with canned results. bin/kvfabric.mjs loads both
// through dist/bundle/load.js.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { build } from 'esbuild';
import { GetStatsResponse, ListNodesResponse, MetaserverService, NodeState } from '@kvfabric/proto/metaserver';
import { loadCli, BUNDLE_FILE, CODE_CACHE_FILE } from '../dist/bundle/load.cjs';

await build({
  entryPoints: [fileURLToPath(new URL('../dist/main.js', import.meta.url))],
  outfile: BUNDLE_FILE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  // etcd3 (loaded only for etcd:// addresses) reads its .proto files from beside its own sources at run time, so it
  // stays a package that Node.js resolves from @kvfabric/common's dependencies.
  external: ['etcd3'],
  logLevel: 'warning',
});

const leader = { addr: '127.0.0.1:1', epoch: 7n, sinceMs: BigInt(Date.now()), ha: false, replicaId: '' };
const node = {
  nodeId: 'training-node',
  addr: '127.0.0.1:2',
  state: NodeState.NODE_STATE_LIVE,
  indexedBlocks: 42n,
  registeredAtMs: BigInt(Date.now()),
  lastHeartbeatMs: BigInt(Date.now()),
};
const server = new grpc.Server();
server.addService(MetaserverService, {
  listNodes: (_call, done) => done(null, ListNodesResponse.fromPartial({ epoch: 7n, nodes: [node], leader })),
  getStats: (_call, done) => done(null, GetStatsResponse.fromPartial({ epoch: 7n, leader })),
});
const port = await new Promise((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
    err ? reject(err) : resolve(bound),
  ),
);

const cli = loadCli({ useCache: false });
const io = { stdout: () => {}, stderr: () => {}, env: {} };
const addr = `127.0.0.1:${port}`;
for (const argv of [
  ['--help'],
  ['nodes', '--metaserver-addr', addr],
  ['nodes', '--output', 'json', '--metaserver-addr', addr],
]) {
  const code = await cli.exports.runCli(argv, io);
  if (code !== 0) throw new Error(`bundle training: kvfabric ${argv.join(' ')} exited ${code}`);
}
server.forceShutdown();
writeFileSync(CODE_CACHE_FILE, cli.script.createCachedData());
