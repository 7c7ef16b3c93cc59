// Metaserver address parsing: host:port and etcd:// forms, and errors that name the field and the bad part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '@kvfabric/common';
import {
  checkEtcdSecurity,
  etcdAddr,
  leaderTarget,
  parseEtcdAddr,
  resolveMetaserverAddr,
} from './metaserver-address.js';

test('resolveMetaserverAddr accepts host:port and names the field otherwise', () => {
  assert.deepEqual(resolveMetaserverAddr('127.0.0.1:50056'), { kind: 'direct', target: '127.0.0.1:50056' });
  assert.deepEqual(resolveMetaserverAddr('[::1]:7'), { kind: 'direct', target: '[::1]:7' });
  assert.throws(
    () => resolveMetaserverAddr('nope', '--metaserver-addr'),
    /--metaserver-addr: expected host:port, got "nope"/,
  );
  assert.throws(() => resolveMetaserverAddr('127.0.0.1:0'), /metaserver-addr: expected a port 1..65535/);
  assert.deepEqual(resolveMetaserverAddr('etcd://127.0.0.1:2379,10.0.0.2:2379/prod'), {
    kind: 'etcd',
    etcd: { endpoints: ['127.0.0.1:2379', '10.0.0.2:2379'], prefix: '/prod' },
  });
  assert.deepEqual(resolveMetaserverAddr('etcd://etcd:2379'), {
    kind: 'etcd',
    etcd: { endpoints: ['etcd:2379'], prefix: '/kvfabric' },
  });
  assert.throws(
    () => resolveMetaserverAddr('etcd://', '--metaserver-addr'),
    /--metaserver-addr: expected etcd:\/\/host:port/,
  );
});

test('etcd:// addresses', () => {
  assert.deepEqual(parseEtcdAddr('etcd://10.0.0.1:2379,10.0.0.2:2379/prod/kvf'), {
    endpoints: ['10.0.0.1:2379', '10.0.0.2:2379'],
    prefix: '/prod/kvf',
  });
  assert.deepEqual(parseEtcdAddr('ETCD://etcd:2379'), { endpoints: ['etcd:2379'], prefix: '/kvfabric' });
  assert.deepEqual(parseEtcdAddr('etcd://[::1]:2379/'), { endpoints: ['[::1]:2379'], prefix: '/kvfabric' });
  assert.equal(parseEtcdAddr('127.0.0.1:50056'), undefined);
  assert.throws(
    () => parseEtcdAddr('etcd:///kvf'),
    (e: unknown) =>
      e instanceof KvError &&
      e.code === 'INVALID_ARGUMENT' &&
      /metaserver-addr: expected etcd:\/\/host:port/.test(e.message),
  );
  assert.throws(() => parseEtcdAddr('etcd://h:2379,nope/kvf'), /bad endpoint "nope"/);
  assert.throws(() => parseEtcdAddr('etcd://h:2379/a b'), /expected an etcd key prefix/);
  assert.equal(etcdAddr(['http://10.0.0.1:2379', '10.0.0.2:2379'], 'kvf/'), 'etcd://10.0.0.1:2379,10.0.0.2:2379/kvf');
  assert.deepEqual(parseEtcdAddr(etcdAddr(['h:1'])), { endpoints: ['h:1'], prefix: '/kvfabric' });
});

test('a leader is only ever a plain host:port', () => {
  assert.equal(leaderTarget('127.0.0.1:7', 'kvfabric-leader-addr'), '127.0.0.1:7');
  assert.equal(leaderTarget(' [::1]:7 ', 'kvfabric-leader-addr'), '[::1]:7');
  assert.equal(leaderTarget('etcd://127.0.0.1:2379', 'kvfabric-leader-addr'), undefined);
  assert.equal(leaderTarget('nope', 'kvfabric-leader-addr'), undefined);
  assert.equal(leaderTarget('127.0.0.1:0', 'kvfabric-leader-addr'), undefined);
});

test('etcd TLS flags beside a metaserver address: only with etcd://, and its endpoints follow the loopback rule', () => {
  const tls = { etcdCa: 'ca.pem', etcdCert: 'c.pem', etcdKey: 'k.pem' };
  assert.deepEqual(checkEtcdSecurity('etcd://10.0.0.1:2379,10.0.0.2:2379/kvf', tls, false), []);
  assert.deepEqual(checkEtcdSecurity('127.0.0.1:50056', {}, false), []);
  assert.deepEqual(checkEtcdSecurity(undefined, {}, false), []);
  assert.throws(
    () => checkEtcdSecurity('127.0.0.1:50056', tls, false),
    /^KvError: etcd-ca: only with an etcd:\/\/host:port\[\/prefix\] --metaserver-addr$/,
  );
  assert.throws(
    () => checkEtcdSecurity('etcd://127.0.0.1:2379,10.0.0.2:2379/kvf', {}, false),
    /^KvError: metaserver-addr: 10\.0\.0\.2:2379 is not a loopback address; give --etcd-ca/,
  );
  assert.deepEqual(checkEtcdSecurity('etcd://127.0.0.1:2379,10.0.0.2:2379/kvf', {}, true), ['10.0.0.2:2379']);
  assert.throws(() => checkEtcdSecurity('etcd://127.0.0.1:2379', { etcdCert: 'c.pem' }, false), /etcd-key: required/);
});
