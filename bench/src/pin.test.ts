// Core splits, and pinning a real process: its allowed CPUs as the kernel reports them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { coreSplit, pin, requestedCoreSplit } from './pin.js';

test('coreSplit: core 0 for servers, the rest for clients; nothing to split on one core', () => {
  assert.equal(coreSplit(1), undefined);
  assert.deepEqual(coreSplit(2), { server: '0', clients: '1' });
  assert.deepEqual(coreSplit(16), { server: '0', clients: '1-15' });
  assert.equal(requestedCoreSplit({}), undefined, 'only when asked');
});

test('pin: every thread of a running process is allowed only the given cores', async () => {
  const child = spawn(process.execPath, ['-e', 'console.log("up"); setTimeout(() => {}, 30_000)'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve) => child.stdout.once('data', resolve)); // running JavaScript: its threads exist
    pin(child.pid!, '0');
    // Node's own threads (V8 platform workers, libuv) were started before the pin: each one is pinned too
    const tids = readdirSync(`/proc/${child.pid}/task`);
    assert.ok(tids.length > 1, `${tids.length} threads`);
    for (const tid of tids)
      assert.match(readFileSync(`/proc/${child.pid}/task/${tid}/status`, 'utf8'), /^Cpus_allowed_list:\s+0$/m, tid);
  } finally {
    child.kill('SIGKILL');
  }
});
