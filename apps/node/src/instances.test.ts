import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InstanceRegistry, type RegisterSpec } from './instances.js';
import { NamespaceRegistry } from './namespaces.js';
import { MemoryDataPath } from './testing/memory-data-path.js';

function setup() {
  const data = new MemoryDataPath(1 << 20, 4096); // pages of at most 4 KiB
  const namespaces = new NamespaceRegistry();
  const registry = new InstanceRegistry(namespaces, data);
  const spec = (id: string, over: Partial<RegisterSpec> = {}): RegisterSpec => {
    data.createRegion(`/${id}`, 4096);
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
      region: { shmName: `/${id}`, sizeBytes: 4096 },
      ...over,
    };
  };
  return { registry, namespaces, spec };
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
    region: { shmName: '/c', sizeBytes: 8192 },
  };
  assert.throws(() => registry.register(spec('c', big)), { code: 'INVALID_ARGUMENT' });
  assert.equal(namespaces.byNameOrUndefined('big'), undefined, 'the refused namespace was not created');
  assert.deepEqual(registry.ids(), ['a']);
});
