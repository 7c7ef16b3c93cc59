#!/usr/bin/env node
// Regenerates packages/proto/src/gen from proto/ with protoc (Debian protobuf-compiler) and ts-proto.
// --check: generate into a temporary folder and fail when the committed copy differs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, cpSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'packages/proto/src/gen');
const check = process.argv.includes('--check');
const out = mkdtempSync(join(tmpdir(), 'kvf-proto-'));

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
} catch (err) {
  console.error('gen-proto: protoc failed (install Debian protobuf-compiler): ' + err.message);
  process.exit(1);
}

const list = (dir) =>
  readdirSync(dir, { recursive: true })
    .filter((f) => statSync(join(dir, f)).isFile())
    .map(String)
    .sort();
if (check) {
  const a = list(out),
    b = list(committed);
  const differ =
    a.length !== b.length ||
    a.some((f, i) => f !== b[i] || readFileSync(join(out, f), 'utf8') !== readFileSync(join(committed, f), 'utf8'));
  rmSync(out, { recursive: true });
  if (differ) {
    console.error('gen-proto: packages/proto/src/gen differs from proto/; run `npm run gen:proto` and commit');
    process.exit(1);
  }
  console.log('gen-proto: generated code matches proto/');
} else {
  rmSync(committed, { recursive: true, force: true });
  cpSync(out, committed, { recursive: true });
  rmSync(out, { recursive: true });
  console.log(
    `gen-proto: wrote ${list(committed)
      .map((f) => relative(root, join(committed, f)))
      .join(', ')}`,
  );
}
