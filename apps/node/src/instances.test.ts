import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InstanceRegistry, type RegisterSpec } from './instances.js';
import { NamespaceRegistry } from './namespaces.js';
import { handOver, testDataPath, testRegions } from './testing/test-data-path.js';

function setup() {
  const data = testDataPath(1 << 20, 4096); // pages of at most 4 KiB
  const namespaces = new NamespaceRegistry();
  const regions = testRegions();
  const registry = new InstanceRegistry(namespaces, data, regions);
  const spec = (id: string, over: Partial<RegisterSpec> = {}): RegisterSpec => {
    const { token } = handOver(regions, `/${id}`, 4096);
    return {
      instanceId: id,
      engineId: id,
      namespace: 'ns',
      tpSize: 1,
      tpRank: 0,
      worldSize: 0,
      replicated: false,
      segmentOffsets: [0, 2048],
      segmentBytes: 256,
      blockStrideBytes: 256,
      numBlocks: 8,
      region: { token, sizeBytes: 4096 },
      ...over,
    };
  };
  return { registry, namespaces, regions, spec };
}

test('register maps the region and fixes the namespace layout; get, hasEngine, remove', () => {
  const { registry, namespaces, spec } = setup();
  const a = registry.register(spec('a', { engineId: 'e' }));
  registry.register(spec('b', { engineId: 'e' }));
  assert.equal(a.ns.pageBytes, 512);
  assert.equal(namespaces.byNameOrUndefined('ns')?.segments, 2);
  assert.deepEqual([...a.segmentOffsets], [0, 2048]);
  assert.equal(registry.get('a'), a);
  assert.equal(registry.size, 2);
  assert.equal(registry.remove('a'), a);
  assert.equal(registry.remove('a'), undefined);
  assert.equal(registry.hasEngine('e'), true, 'b is still registered');
  registry.remove('b');
  assert.equal(registry.hasEngine('e'), false);
  assert.throws(() => registry.get('a'), { code: 'INSTANCE_UNKNOWN' });
});

test('every engine has a number, shared by its instances and kept while one of them is registered', () => {
  const { registry, spec } = setup();
  const a = registry.register(spec('a', { engineId: 'e' }));
  const b = registry.register(spec('b', { engineId: 'e' }));
  const c = registry.register(spec('c', { engineId: 'f' }));
  assert.equal(b.engineNo, a.engineNo);
  assert.notEqual(c.engineNo, a.engineNo);
  registry.remove('a');
  assert.equal(registry.register(spec('a2', { engineId: 'e' })).engineNo, a.engineNo, 'b kept the number');
  registry.remove('a2');
  registry.remove('b');
  const again = registry.register(spec('a3', { engineId: 'e' }));
  assert.ok(![a.engineNo, c.engineNo].includes(again.engineNo), 'a gone engine never lends its number to leases');
  assert.throws(() => registry.register(spec('a3', { engineId: 'g' })), { code: 'INSTANCE_EXISTS' });
  assert.equal(registry.hasEngine('g'), false, 'a refused registration numbers no engine');
});

test('a refused registration changes nothing: duplicate id, conflicting geometry, oversized first page', () => {
  const { registry, namespaces, spec } = setup();
  registry.register(spec('a'));
  assert.throws(() => registry.register(spec('a')), { code: 'INSTANCE_EXISTS' });
  assert.throws(() => registry.register(spec('b', { segmentBytes: 128 })), { code: 'GEOMETRY_CONFLICT' });
  const big = {
    namespace: 'big',
    segmentBytes: 8192,
    blockStrideBytes: 8192,
    numBlocks: 1,
    segmentOffsets: [0],
    region: { token: 'unused', sizeBytes: 8192 },
  };
  assert.throws(() => registry.register(spec('c', big)), { code: 'INVALID_ARGUMENT' });
  assert.equal(namespaces.byNameOrUndefined('big'), undefined, 'the refused namespace was not created');
  assert.deepEqual(registry.ids(), ['a']);
});

test('only the registering caller (its key) may use an instance; a region token works once', () => {
  const { registry, regions, spec } = setup();
  const a = registry.register(spec('a'));
  assert.match(a.key, /^[0-9a-f]{32}$/);
  assert.equal(registry.authorize('a', a.key), a);
  assert.throws(() => registry.authorize('a', ''), {
    code: 'INSTANCE_FOREIGN',
    message: 'instance_id: "a" was registered by another caller (metadata kvfabric-instance-key is missing)',
  });
  assert.throws(() => registry.authorize('a', 'f'.repeat(32)), { code: 'INSTANCE_FOREIGN', message: /does not match/ });
  assert.throws(() => registry.authorize('zz', a.key), { code: 'INSTANCE_UNKNOWN' });
  const { token } = handOver(regions, '/b', 4096);
  const b = registry.register({ ...spec('b'), region: { token, sizeBytes: 4096 } });
  assert.notEqual(b.key, a.key);
  assert.throws(() => registry.register({ ...spec('c'), region: { token, sizeBytes: 4096 } }), {
    code: 'REGION_INVALID',
    message: /^region.token: .* names no handed-over region \(unknown, already used, or expired after 60 s\)$/,
  });
  assert.deepEqual(registry.ids(), ['a', 'b']);
});
