#!/usr/bin/env node
// Regenerates packages/proto/src/gen from proto/ with protoc (Debian protobuf-compiler) and ts-proto, and the vLLM
// connector's Python stubs of the Engine API (common.proto, node.proto) in connectors/vllm/src/kvfabric_vllm/proto
// with protoc's Python generator and grpc_python_plugin (Debian protobuf-compiler-grpc); their imports of sibling
// modules are rewritten to live inside the kvfabric_vllm package.
// --check: generate into temporary folders and fail when a committed copy differs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'packages/proto/src/gen');
const committedPy = join(root, 'connectors/vllm/src/kvfabric_vllm/proto');
const check = process.argv.includes('--check');
const out = mkdtempSync(join(tmpdir(), 'kvf-proto-'));
const outPy = mkdtempSync(join(tmpdir(), 'kvf-proto-py-'));
const PY_PROTOS = ['kvfabric/v1/common.proto', 'kvfabric/v1/node.proto'];
const PY_PACKAGE = 'kvfabric_vllm.proto';

const protos = readdirSync(join(root, 'proto/kvfabric/v1'))
  .filter((f) => f.endsWith('.proto'))
  .map((f) => `kvfabric/v1/${f}`);
const plugin = join(root, 'node_modules/.bin/protoc-gen-ts_proto');
const options = [
  'outputServices=grpc-js',
  'env=node',
  'forceLong=bigint',
  'esModuleInterop=true',
  'importSuffix=.js',
  'useOptionals=none',
  'oneof=unions-value',
  'useDate=false',
  'exportCommonSymbols=false',
].join(',');
try {
  execFileSync(
    'protoc',
    [
      `--plugin=protoc-gen-ts_proto=${plugin}`,
      `--ts_proto_out=${out}`,
      `--ts_proto_opt=${options}`,
      '-I',
      join(root, 'proto'),
      ...protos,
    ],
    { stdio: 'inherit' },
  );
  execFileSync(
    'protoc',
    [
      '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin',
      `--python_out=${outPy}`,
      `--pyi_out=${outPy}`,
      `--grpc_python_out=${outPy}`,
      '-I',
      join(root, 'proto'),
      ...PY_PROTOS,
    ],
    { stdio: 'inherit' },
  );
} catch (err) {
  console.error(
    'gen-proto: protoc failed (install Debian protobuf-compiler and protobuf-compiler-grpc): ' + err.message,
  );
  process.exit(1);
}
// Package markers, and `from kvfabric.v1 import x_pb2` made `from kvfabric_vllm.proto.kvfabric.v1 import x_pb2`
// (as generated, the modules would need a top-level `kvfabric` package).
for (const dir of ['', 'kvfabric', 'kvfabric/v1']) {
  mkdirSync(join(outPy, dir), { recursive: true });
  writeFileSync(join(outPy, dir, '__init__.py'), dir ? '' : '# Generated from proto/ by scripts/gen-proto.mjs.\n');
}
for (const f of readdirSync(join(outPy, 'kvfabric/v1'))) {
  const path = join(outPy, 'kvfabric/v1', f);
  writeFileSync(
    path,
    readFileSync(path, 'utf8').replace(/^from kvfabric\.v1 import /gm, `from ${PY_PACKAGE}.kvfabric.v1 import `),
  );
}

const list = (dir) =>
  readdirSync(dir, { recursive: true })
    .filter((f) => statSync(join(dir, f)).isFile())
    .map(String)
    .sort();
const differs = (dir, committedDir) => {
  let b;
  try {
    b = list(committedDir);
  } catch {
    return true;
  }
  const a = list(dir);
  return (
    a.length !== b.length ||
    a.some((f, i) => f !== b[i] || readFileSync(join(dir, f), 'utf8') !== readFileSync(join(committedDir, f), 'utf8'))
  );
};
const targets = [
  [out, committed],
  [outPy, committedPy],
];
if (check) {
  const stale = targets.filter(([dir, to]) => differs(dir, to)).map(([, to]) => relative(root, to));
  for (const [dir] of targets) rmSync(dir, { recursive: true });
  if (stale.length > 0) {
    console.error(`gen-proto: ${stale.join(' and ')} differ from proto/; run \`npm run gen:proto\` and commit`);
    process.exit(1);
  }
  console.log('gen-proto: generated code matches proto/');
} else {
  for (const [dir, to] of targets) {
    rmSync(to, { recursive: true, force: true });
    cpSync(dir, to, { recursive: true });
    rmSync(dir, { recursive: true });
  }
  console.log(
    `gen-proto: wrote ${targets.flatMap(([, to]) => list(to).map((f) => relative(root, join(to, f)))).join(', ')}`,
  );
}
