import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ECHO_MAX_CHARS, ERROR_MESSAGE_MAX_CHARS, clip, echo } from './echo.js';
import { KvError, invalid } from './errors.js';

test('short values are echoed as written', () => {
  assert.equal(echo('16 gigs'), '"16 gigs"');
  assert.equal(echo('x'.repeat(ECHO_MAX_CHARS)), JSON.stringify('x'.repeat(ECHO_MAX_CHARS)));
  assert.equal(echo(-3), '-3');
  assert.equal(echo(12n), '12');
  assert.equal(echo(true), 'true');
  assert.equal(echo(undefined), 'undefined');
  assert.equal(echo(null), 'null');
  assert.equal(echo(Buffer.alloc(33)), '33 bytes');
  assert.equal(echo([]), '[]');
  assert.equal(echo([1, 'x', null]), '[1,"x",null]');
  assert.equal(echo([1, 2, 3, 4, 5, 6, 7, 8, 9]), 'an array of 9 items');
  assert.equal(echo([[1]]), 'an array of 1 items');
  assert.equal(echo({ a: 1 }), 'an object');
});

test('a long string shows its first characters and its length', () => {
  const id = 'a'.repeat(128 * 1024);
  assert.equal(echo(id), `"${'a'.repeat(ECHO_MAX_CHARS)}"… (131072 characters)`);
  const err = invalid('node_id', 'expected 1..128 printable characters without spaces', id);
  assert.equal(
    err.message,
    `node_id: expected 1..128 printable characters without spaces, got "${'a'.repeat(ECHO_MAX_CHARS)}"… (131072 characters)`,
  );
});

test('a deeply nested value is described without recursing', () => {
  const depth = 200_000;
  const nested = JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown;
  assert.throws(() => JSON.stringify(nested), RangeError, 'JSON.stringify recurses (what echo must avoid)');
  assert.equal(echo(nested), 'an array of 1 items');
  assert.equal(
    invalid('tokens[0]', 'expected a token id', nested).message,
    'tokens[0]: expected a token id, got an array of 1 items',
  );
});

test('control and non-ASCII characters stay escaped and bounded', () => {
  const s = '\u0000'.repeat(1000);
  const out = echo(s);
  assert.equal(out, `${JSON.stringify('\u0000'.repeat(ECHO_MAX_CHARS))}… (1000 characters)`);
  assert.ok(out.length <= ECHO_MAX_CHARS * 6 + 40);
});

test('every KvError message is clipped', () => {
  assert.equal(clip('short'), 'short');
  const long = 'm'.repeat(ERROR_MESSAGE_MAX_CHARS + 10);
  assert.equal(clip(long), `${'m'.repeat(ERROR_MESSAGE_MAX_CHARS)}… (${ERROR_MESSAGE_MAX_CHARS + 10} characters)`);
  const err = new KvError('INTERNAL', long);
  assert.equal(err.message, clip(long));
  assert.equal(err.message.length, ERROR_MESSAGE_MAX_CHARS + `… (${ERROR_MESSAGE_MAX_CHARS + 10} characters)`.length);
});
