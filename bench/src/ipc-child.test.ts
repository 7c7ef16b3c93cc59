// IpcChild against real forked processes: a small child script written for the test answers, fails, ticks, dies or
// ignores its parent's disconnect, as the test asks it to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpcChild } from './ipc-child.js';

type To =
  { kind: 'echo'; v: number } | { kind: 'fail' } | { kind: 'odd' } | { kind: 'die' } | { kind: 'ignore-disconnect' };
type From = { kind: 'ready' } | { kind: 'echoed'; v: number; ticks: number };

const CHILD = `
let ignoreDisconnect = false;
process.on('disconnect', () => { if (!ignoreDisconnect) process.exit(0); });
process.on('message', (m) => {
  if (m.kind === 'echo') {
    for (let i = 0; i < m.v; i++) process.send({ kind: 'tick', n: 1 });
    process.send({ kind: 'echoed', v: m.v, ticks: m.v });
  } else if (m.kind === 'fail') process.send({ kind: 'error', message: 'asked to fail' });
  else if (m.kind === 'odd') process.send({ kind: 'ready' });
  else if (m.kind === 'die') process.exit(3);
  else if (m.kind === 'ignore-disconnect') { ignoreDisconnect = true; setInterval(() => {}, 1000); process.send({ kind: 'ready' }); }
});
process.send({ kind: 'ready' });
`;

function withChildScript(fn: (script: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-ipc-child-'));
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  return fn(script).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('IpcChild: answers by kind, ticks as progress, failures and unexpected kinds reject, the request after stays usable', () =>
  withChildScript(async (script) => {
    await using child = IpcChild.fork<To, From>('test child', script);
    await child.next('ready');
    let ticks = 0;
    child.onTick = (n) => (ticks += n);
    assert.deepEqual(await child.request({ kind: 'echo', v: 5 }, 'echoed'), { kind: 'echoed', v: 5, ticks: 5 });
    assert.equal(ticks, 5);
    await assert.rejects(child.request({ kind: 'fail' }, 'echoed'), /^Error: test child: asked to fail$/);
    await assert.rejects(child.request({ kind: 'odd' }, 'echoed'), /test child: expected echoed, answered .*ready/);
    assert.equal((await child.request({ kind: 'echo', v: 1 }, 'echoed')).v, 1);
  }));

test('IpcChild: a child that exits fails the request in flight and every later one', () =>
  withChildScript(async (script) => {
    await using child = IpcChild.fork<To, From>('test child', script);
    await child.next('ready');
    await assert.rejects(child.request({ kind: 'die' }, 'echoed'), /test child exited \(3\)/);
    await assert.rejects(child.request({ kind: 'echo', v: 1 }, 'echoed'), /test child exited \(3\)/);
  }));

test('IpcChild: close() ends a child that exits on disconnect, and kills one that does not', () =>
  withChildScript(async (script) => {
    const polite = IpcChild.fork<To, From>('test child', script);
    await polite.next('ready');
    await polite.close(120_000); // the grace is not what is tested here: however slow the host, it exits by itself
    await assert.rejects(polite.request({ kind: 'echo', v: 1 }, 'echoed'), /test child exited \(0\)/);

    const deaf = IpcChild.fork<To, From>('test child', script);
    await deaf.next('ready');
    await deaf.request({ kind: 'ignore-disconnect' }, 'ready');
    await deaf.close(50);
    await assert.rejects(deaf.request({ kind: 'echo', v: 1 }, 'echoed'), /test child exited \(SIGKILL\)/);
  }));
