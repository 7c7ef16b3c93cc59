import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callIdentity, loadServerSecurity } from './rpc-tls.js';

const sslCall = (subjectaltname: string) => ({
  getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { subjectaltname } as never }),
});

test('a plaintext server identifies every caller as undefined without reading the call (policy file or not)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvfabric-rpc-tls-'));
  try {
    const policy = join(dir, 'namespaces.json');
    writeFileSync(policy, JSON.stringify({ 'client/a': ['ns1'] }));
    let asked = 0;
    const call = {
      getAuthContext: () => {
        asked++;
        return { transportSecurityType: 'ssl', sslPeerCertificate: { subjectaltname: 'URI:kvfabric://client/a' } };
      },
    } as never;
    for (const security of [loadServerSecurity({}, 'metaserver'), loadServerSecurity({ namespaces: policy }, 'node')]) {
      assert.equal(security.tls, undefined);
      assert.equal(security.identify(call), undefined);
    }
    assert.equal(asked, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('callIdentity reads the certificate of a TLS call and refuses one without a kvfabric identity', () => {
  assert.deepEqual(callIdentity(sslCall('URI:kvfabric://client/a, DNS:localhost')), {
    role: 'client',
    name: 'a',
    namespaces: 'all',
  });
  assert.equal(callIdentity({ getAuthContext: () => ({}) }), undefined);
  assert.throws(() => callIdentity(sslCall('DNS:localhost')), /exactly one subject alternative name/);
});
