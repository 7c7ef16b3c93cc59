#!/usr/bin/env node
// Runs every *.test.ts in the workspace with Node's built-in runner (through tsx, against source: the `source`
// export condition; the processes they start run the compiled dist/, so `npm test` builds first).
// Usage: node scripts/run-tests.mjs [--rdma | --security] [path-filter ...]
//   --rdma: the *.rdma.ts files instead, which need real RDMA devices (inside the VM: `npm run test:rdma`)
//   --security: the *.security.ts files instead: known attacks replayed against real processes (`npm run test:security`)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const roots = ['packages', 'apps', 'native', 'bench'];
const skip = new Set(['node_modules', 'build', 'dist', '.turbo', 'results']);

function walk(dir, out) {
  for (const entry of readdirSync(dir)) {
    if (skip.has(entry)) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (entry.endsWith(suffix)) out.push(relative(root, path));
  }
  return out;
}

const rdma = process.argv.includes('--rdma');
const security = process.argv.includes('--security');
const suffix = rdma ? '.rdma.ts' : security ? '.security.ts' : '.test.ts';
const filters = process.argv.slice(2).filter((a) => a !== '--rdma' && a !== '--security');
const files = roots
  .flatMap((r) => walk(join(root, r), []))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
console.error(`run-tests: ${files.length} files`);
const result = spawnSync(
  process.execPath,
  [
    '--conditions=source',
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${rdma ? 1 : 2}`,
    `--test-timeout=${rdma ? 300000 : 180000}`,
    '--test-reporter=spec',
    ...files,
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, KVFABRIC_TEST: '1' } },
);
process.exit(result.status ?? 1);
