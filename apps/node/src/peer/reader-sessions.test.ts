import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReaderSessions } from './reader-sessions.js';

function sessions(maxReaders: number, idleMs = 1000) {
  let clock = 0;
  const busy = new Set<string>();
  const s = new ReaderSessions({ maxReaders, idleMs, busy: (p) => busy.has(p), now: () => clock });
  const admit = (peer: string, session: bigint) => {
    const displaced = s.makeRoom(peer);
    s.admit(peer, session);
    return displaced;
  };
  return { s, busy, admit, advance: (ms: number) => (clock += ms) };
}

test('past maxReaders a new reader displaces the least recently used one without live grants', () => {
  const { s, busy, admit } = sessions(3);
  assert.equal(admit('a', 1n), undefined);
  assert.equal(admit('b', 2n), undefined);
  assert.equal(admit('c', 3n), undefined);
  assert.ok(s.touch('a', 1n)); // a is now the most recently used
  busy.add('b');
  assert.equal(admit('d', 4n), 'c'); // b holds grants: c goes
  assert.equal(admit('a', 5n), undefined, 'a handshake of an admitted reader displaces nobody');
  assert.equal(s.size, 3);
  assert.equal(s.touch('a', 1n), false, 'the old session is gone');
  assert.ok(s.touch('a', 5n));
  busy.add('a');
  busy.add('d');
  assert.throws(() => s.makeRoom('e'), { code: 'PEER_LIMIT_REACHED', message: /^max-readers: all 3 admitted/ });
  assert.deepEqual({ ...s.counters }, { idle: 0, displaced: 1, refused: 1 });
});

test('session 0 (a reader still being admitted) never authenticates', () => {
  const { s, admit } = sessions(2);
  admit('a', 0n);
  assert.equal(s.touch('a', 0n), false);
  assert.equal(s.touch('b', 0n), false);
});

test('readers idle for idleMs without grants are swept; use keeps them; busy ones stay', () => {
  const { s, busy, admit, advance } = sessions(10, 1000);
  admit('a', 1n);
  admit('b', 2n);
  admit('c', 3n);
  busy.add('a');
  advance(600);
  s.touch('c', 3n);
  advance(600);
  assert.deepEqual(s.sweep(), ['b']);
  assert.equal(s.size, 2);
  advance(1000);
  assert.deepEqual(s.sweep(), ['c']);
  busy.delete('a');
  assert.deepEqual(s.sweep(), ['a']);
  assert.equal(s.counters.idle, 3);
});
