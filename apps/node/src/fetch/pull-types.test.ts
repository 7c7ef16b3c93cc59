import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import { NamespaceRegistry } from '../namespaces.js';
import { PullError, PullRequest, reasonOf } from './pull-types.js';

test('a pull request hands out hash slices of its blocks, and RPC deadlines within its own', () => {
  const ns = new NamespaceRegistry().ensure('t/ns', { tpSize: 1, replicated: false, segments: 1, segmentBytes: 4096 });
  const packed = Buffer.from('aaaabbbbcccc');
  const req = new PullRequest(ns, packed, 4, 3, Date.now() + 600_000);
  assert.equal(req.count, 3);
  assert.equal(req.hashes(1, 3).toString(), 'bbbbcccc');
  assert.equal(req.timeLeft(2000), 2000);
  assert.equal(req.overdue, false);
  const late = new PullRequest(ns, packed, 4, 3, Date.now() - 1);
  assert.equal(late.timeLeft(2000), 1, 'an RPC deadline is never 0 or negative');
  assert.equal(late.overdue, true);
});

test('failure reasons by error and stage', () => {
  assert.equal(reasonOf(new PullError('layout_mismatch', 'x'), 'read'), 'layout_mismatch');
  assert.equal(reasonOf(new KvError('GRANT_REFUSED', 'grant 3 expired'), 'read'), 'grant_expired');
  assert.equal(reasonOf(new KvError('GRANT_REFUSED', 'range not covered'), 'read'), 'grant_refused');
  assert.equal(reasonOf(new KvError('TRANSPORT_TIMEOUT', 'x'), 'read'), 'transport_timeout');
  assert.equal(reasonOf(new KvError('TRANSPORT_TIMEOUT', 'x'), 'prepare'), 'peer_unreachable');
  assert.equal(reasonOf(new KvError('TRANSPORT_UNAVAILABLE', 'x'), 'handshake'), 'handshake_failed');
  assert.equal(reasonOf(new KvError('TRANSPORT_FAILED', 'x'), 'read'), 'transport_failed');
  assert.equal(reasonOf(new KvError('POOL_EXHAUSTED', 'x'), 'read'), 'pool_exhausted');
  assert.equal(reasonOf(new Error('x'), 'prepare'), 'internal');
});
