// The one etcd3 options builder: hosts without their scheme, credentials only with TLS, schemes that agree with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etcdOptions } from './connect.js';

test('credentials go to etcd3 only with TLS; a scheme that contradicts the TLS choice names the field', () => {
  const tls = { rootCertificate: Buffer.from('ca'), certChain: Buffer.from('c'), privateKey: Buffer.from('k') };
  const secure = etcdOptions(['https://etcd-0:2379', 'etcd-1:2379'], { tls });
  assert.deepEqual([secure.hosts, secure.credentials], [['etcd-0:2379', 'etcd-1:2379'], tls]);
  const plain = etcdOptions(['http://127.0.0.1:2379']);
  assert.deepEqual([plain.hosts, plain.credentials], [['127.0.0.1:2379'], undefined]);
  assert.throws(
    () => etcdOptions(['https://127.0.0.1:2379']),
    /^KvError: etcd-endpoints: "https:\/\/127\.0\.0\.1:2379" is https:\/\/ but --etcd-ca is not given/,
  );
  assert.throws(
    () => etcdOptions(['http://127.0.0.1:2379'], { tls, field: 'metaserver-addr' }),
    /^KvError: metaserver-addr: "http:\/\/127\.0\.0\.1:2379" is http:\/\/ but --etcd-ca turns on TLS to etcd/,
  );
});
