import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NamespaceRegistry } from './namespaces.js';

const layout = { tpSize: 2, replicated: false, segments: 4, segmentBytes: 1024 };

test('geometry is fixed by the first registration', () => {
  const r = new NamespaceRegistry();
  const ns = r.ensure('llama/fp16', layout);
  assert.equal(ns.pageBytes, 4096);
  assert.equal(ns.shards, 2);
  assert.equal(r.ensure('llama/fp16', layout), ns);
  assert.throws(() => r.ensure('llama/fp16', { ...layout, tpSize: 4 }), {
    code: 'GEOMETRY_CONFLICT',
    message: /tp_size 4 \(fixed: 2\)/,
  });
  assert.throws(() => r.ensure('llama/fp16', { ...layout, segmentBytes: 512 }), {
    code: 'GEOMETRY_CONFLICT',
    message: /segment_bytes/,
  });
  assert.equal(r.ensure('mla', { ...layout, tpSize: 4, replicated: true }).shards, 1);
});

test('bad namespaces and layouts name the field', () => {
  const r = new NamespaceRegistry();
  assert.throws(() => r.ensure('x'.repeat(129), layout), {
    code: 'INVALID_ARGUMENT',
    message: /namespace: expected at most 128/,
  });
  assert.throws(() => r.ensure('bad space', layout), { code: 'INVALID_ARGUMENT', message: /namespace/ });
  assert.throws(() => r.ensure('ok', { ...layout, tpSize: 0 }), { code: 'INVALID_ARGUMENT', message: /tp_size/ });
  assert.throws(() => r.ensure('ok', { ...layout, segmentBytes: 0 }), {
    code: 'INVALID_ARGUMENT',
    message: /segment_bytes/,
  });
  assert.throws(() => r.ensure('ok', layout, 1000), { code: 'INVALID_ARGUMENT', message: /page bytes/ });
  assert.equal(r.all().length, 0);
});
