import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NamespacePolicy,
  authorizeNamespace,
  authorizeNode,
  authorizeRole,
  identityFromAltNames,
  nodeIdFor,
} from './identity.js';

test('a certificate names exactly one kvfabric identity, and optionally its namespaces', () => {
  const node = identityFromAltNames('URI:kvfabric://node/gpu-7, DNS:localhost, IP Address:127.0.0.1');
  assert.deepEqual(node, { role: 'node', name: 'gpu-7', namespaces: 'all' });
  const tenant = identityFromAltNames(
    'URI:kvfabric://client/ops, URI:kvfabric://namespace/a, URI:kvfabric://namespace/b',
  );
  assert.deepEqual([...(tenant.namespaces as Set<string>)], ['a', 'b']);
  for (const [san, why] of [
    ['DNS:localhost', /found 0/],
    [undefined, /found 0/],
    ['URI:kvfabric://node/a, URI:kvfabric://node/b', /found 2/],
    ['URI:kvfabric://root/a', /ROLE one of metaserver, node, client/],
    ['URI:kvfabric://node/a/b', /not kvfabric:\/\/ROLE\/NAME/],
    ['URI:kvfabric://node/a b', /not kvfabric:\/\/ROLE\/NAME/],
  ] as const)
    assert.throws(
      () => identityFromAltNames(san),
      (err: Error & { code: string }) => err.code === 'UNAUTHENTICATED' && why.test(err.message),
    );
});

test('a node certificate acts only for node ids NAME/...; no identity (plaintext) is not checked', () => {
  const a = identityFromAltNames('URI:kvfabric://node/a');
  const id = nodeIdFor(a, 'f00d');
  assert.equal(id, 'a/f00d');
  assert.doesNotThrow(() => authorizeNode(a, id));
  assert.doesNotThrow(() => authorizeNode(undefined, 'anything'));
  for (const other of ['b/f00d', 'ab/f00d', 'a-/1', 'x'])
    assert.throws(
      () => authorizeNode(a, other),
      (err: Error & { code: string }) => err.code === 'PERMISSION_DENIED' && err.message.startsWith('node_id: '),
    );
  const client = identityFromAltNames('URI:kvfabric://client/a');
  assert.throws(() => authorizeNode(client, 'a/1'), /kvfabric:\/\/client\/a/);
  assert.throws(() => authorizeRole(client, ['node'], 'PrepareRead'), /PrepareRead is for node certificates/);
  assert.throws(
    () => authorizeNode(a, 'x'.repeat(100_000)),
    (err: Error) => err.message.length < 400,
  );
});

test('namespaces: the certificate list, replaced by the policy file for the identities it names', () => {
  const limited = identityFromAltNames('URI:kvfabric://node/t, URI:kvfabric://namespace/tenant-a');
  assert.doesNotThrow(() => authorizeNamespace(limited, 'tenant-a'));
  assert.throws(
    () => authorizeNamespace(limited, 'tenant-b'),
    /may not use namespace "tenant-b" \(allowed: tenant-a\)/,
  );
  const policy = NamespacePolicy.parse('{"node/t": ["tenant-b"], "client/ops": "*"}', 'p.json');
  assert.doesNotThrow(() => authorizeNamespace(policy.apply(limited), 'tenant-b'));
  assert.throws(() => authorizeNamespace(policy.apply(limited), 'tenant-a'), /tenant-a/);
  const ops = policy.apply(identityFromAltNames('URI:kvfabric://client/ops, URI:kvfabric://namespace/x'));
  assert.equal(ops.namespaces, 'all');
  for (const [text, why] of [
    ['[', /p\.json: not JSON/],
    ['[]', /expected an object/],
    ['{"root/x": "*"}', /key "root\/x": expected ROLE\/NAME/],
    ['{"node/x": [1]}', /node\/x: expected a list of namespace names or "\*"/],
  ] as const)
    assert.throws(() => NamespacePolicy.parse(text, 'p.json'), why);
});
