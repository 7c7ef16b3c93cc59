// The shipped bin runs the bundle (dist/kvfabric.cjs) with the code cache the build wrote; a cache V8 refuses would
// still work, only slower, so this checks that the build's cache is the one V8 takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { commandPath } from '@kvfabric/testkit';

const loader = join(dirname(realpathSync(commandPath('kvfabric'))), '..', 'dist', 'bundle', 'load.cjs');

test('the bin loads the bundled CLI with the code cache written at build time', () => {
  const probe = `const cli = require(${JSON.stringify(loader)}).loadCli();
    console.log(JSON.stringify({ cacheAccepted: cli.cacheAccepted, main: typeof cli.exports.main }));`;
  const seen = JSON.parse(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }));
  assert.deepEqual(seen, { cacheAccepted: true, main: 'function' });
});

test('without the cache the bundle compiles from source and reports it', () => {
  const probe = `const cli = require(${JSON.stringify(loader)}).loadCli({ useCache: false });
    console.log(JSON.stringify({ cacheAccepted: cli.cacheAccepted, main: typeof cli.exports.main }));`;
  const seen = JSON.parse(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }));
  assert.deepEqual(seen, { cacheAccepted: false, main: 'function' });
});
