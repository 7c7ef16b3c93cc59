// The metaserver's V8 flags (its bin file's `#!/usr/bin/env -S node FLAGS` line): the file runs by itself with them,
// and testkit starts the process under test with the same ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BIN, shebangNodeFlags, startMetaserver } from '@kvfabric/testkit';

const FLAGS = [
  '--max-semi-space-size=4',
  '--min-semi-space-size=4',
  '--initial-old-space-size=256',
  '--no-parallel-scavenge',
];

test('the bin file carries the collector flags and runs by itself (env -S node)', () => {
  assert.deepEqual(shebangNodeFlags(BIN.metaserver), FLAGS);
  const help = spawnSync(BIN.metaserver, ['--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: kvfabric-metaserver \[flags\]/);
});

test('a metaserver started by testkit runs with the flags of its bin file', async () => {
  await using meta = await startMetaserver({ logLevel: 'warn' });
  const argv = readFileSync(`/proc/${meta.proc.pid}/cmdline`, 'utf8').split('\0');
  const bin = argv.indexOf(BIN.metaserver);
  assert.ok(bin > 0, `the bin file in ${argv.join(' ')}`);
  assert.deepEqual(argv.slice(1, bin), FLAGS);
});
