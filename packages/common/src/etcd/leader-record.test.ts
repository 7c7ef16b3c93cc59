import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '../errors.js';
import {
  decodeLeaderRecord,
  encodeLeaderRecord,
  epochFor,
  epochKey,
  leaderKey,
  normalizePrefix,
  seqOf,
} from './leader-record.js';

test('leader record round trip keeps 64-bit epochs exact', () => {
  const r = {
    addr: '10.0.0.5:50056',
    epoch: (123456789n << 24n) | 0xabcdefn,
    sinceMs: 1_700_000_000_123,
    replicaId: 'metaserver-0',
  };
  const text = encodeLeaderRecord(r);
  assert.equal(
    text,
    '{"addr":"10.0.0.5:50056","epoch":"2071261226978799","since_ms":1700000000123,"replica_id":"metaserver-0"}',
  );
  assert.deepEqual(decodeLeaderRecord(text), r);
  assert.equal(seqOf(r.epoch), 123456789n);
});

test('malformed leader keys are refused naming the field, always METASERVER_UNAVAILABLE', () => {
  assert.throws(() => decodeLeaderRecord('nope'), /leader key: expected JSON, got "nope"/);
  assert.throws(
    () => decodeLeaderRecord('{"addr":"a:1","epoch":7,"since_ms":1,"replica_id":"x"}'),
    /leader key: epoch: expected a decimal uint64, got 7/,
  );
  assert.throws(
    () => decodeLeaderRecord('{"epoch":"7","since_ms":1,"replica_id":"x"}'),
    /leader key: addr: expected host:port/,
  );
  assert.throws(() => decodeLeaderRecord('{"addr":"a:1","epoch":"7","since_ms":"1","replica_id":"x"}'), /since_ms/);
  assert.throws(
    () => decodeLeaderRecord('{"addr":"a:1","epoch":"7","since_ms":1}'),
    /leader key: replica_id: expected a string, got undefined/,
  );
  for (const text of [
    '',
    'null',
    '[]',
    '{"addr":"","epoch":"7","since_ms":1,"replica_id":"x"}',
    '{"addr":"a:1","epoch":"0","since_ms":1,"replica_id":"x"}',
  ]) {
    assert.throws(
      () => decodeLeaderRecord(text),
      (e: unknown) => e instanceof KvError && e.code === 'METASERVER_UNAVAILABLE',
      text,
    );
  }
});

test('epochs grow with the election sequence and carry random low bits', () => {
  const seen = new Set<bigint>();
  let last = 0n;
  for (let seq = 1n; seq <= 50n; seq++) {
    const e = epochFor(seq);
    assert.equal(seqOf(e), seq);
    assert.ok(e > last);
    assert.ok((e & 0xffffffn) !== 0n);
    last = e;
    seen.add(e & 0xffffffn);
  }
  assert.ok(seen.size > 40, 'low bits vary');
});

test('key names under a normalized prefix', () => {
  assert.equal(normalizePrefix('kvfabric/'), '/kvfabric');
  assert.equal(normalizePrefix('/'), '');
  assert.equal(leaderKey('/prod/kvf'), '/prod/kvf/leader');
  assert.equal(epochKey('/kvfabric'), '/kvfabric/epoch');
});
