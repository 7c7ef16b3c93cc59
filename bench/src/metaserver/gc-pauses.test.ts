// The bench's reading of the metaserver's GC pause histogram: deltas between scrapes, summed over kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addGcDelta, emptyGcPauses, parseGcPauses, summarizeGcPauses } from './gc-pauses.js';

const scrape = (minor: number[], major: number[], sums: [number, number]) => {
  const bounds = ['0.001', '0.005', '0.01', '+Inf'];
  const lines = [
    '# HELP kvfabric_metaserver_gc_pause_seconds Garbage-collection pauses',
    `kvfabric_metaserver_gc_pause_seconds_count{kind="minor",otel_scope_name="m"} ${minor.at(-1)}`,
    `kvfabric_metaserver_gc_pause_seconds_sum{kind="minor",otel_scope_name="m"} ${sums[0]}`,
    ...bounds.map(
      (b, i) => `kvfabric_metaserver_gc_pause_seconds_bucket{kind="minor",otel_scope_name="m",le="${b}"} ${minor[i]}`,
    ),
    `kvfabric_metaserver_gc_pause_seconds_count{kind="major",otel_scope_name="m"} ${major.at(-1)}`,
    `kvfabric_metaserver_gc_pause_seconds_sum{kind="major",otel_scope_name="m"} ${sums[1]}`,
    ...bounds.map(
      (b, i) => `kvfabric_metaserver_gc_pause_seconds_bucket{kind="major",otel_scope_name="m",le="${b}"} ${major[i]}`,
    ),
    'kvfabric_metaserver_rpc_total{method="queryPrefix",status="OK"} 12',
  ];
  return lines.join('\n') + '\n';
};

test('parseGcPauses sums the kinds; deltas and summaries are exact', () => {
  const before = parseGcPauses(scrape([3, 4, 4, 4], [0, 0, 1, 1], [0.002, 0.007]));
  assert.equal(before.count, 5);
  assert.ok(Math.abs(before.sumSeconds - 0.009) < 1e-12);
  assert.deepEqual(
    [...before.buckets],
    [
      [0.001, 3],
      [0.005, 4],
      [0.01, 5],
      [Infinity, 5],
    ],
  );
  // 100 more pauses: 98 under 1 ms, one under 5 ms, one under 10 ms
  const after = parseGcPauses(scrape([101, 103, 103, 103], [0, 0, 2, 2], [0.05, 0.015]));
  const total = emptyGcPauses();
  addGcDelta(total, before, after);
  assert.equal(total.count, 100);
  assert.ok(Math.abs(total.sumSeconds - 0.056) < 1e-12);
  const s = summarizeGcPauses(total);
  assert.equal(s.pauses, 100);
  assert.equal(s.p99Ms, 5); // the 99th pause is in the (1, 5] ms bucket
  assert.equal(s.maxMs, 10);
  assert.ok(Math.abs(s.totalMs - 56) < 1e-9);
  assert.deepEqual(summarizeGcPauses(emptyGcPauses()), { pauses: 0, totalMs: 0, p99Ms: 0, maxMs: 0 });
});
