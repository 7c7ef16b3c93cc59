// GC pause metrics: a forced full collection shows up as a major pause in the process's own /metrics text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GC_PAUSE_BUCKETS_SECONDS, observeGcPauses } from './gc-metrics.js';
import { Metrics } from './metrics.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The value of the first line of `text` starting with `prefix`, or undefined. */
function value(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('observeGcPauses: forced full collections are recorded as major pauses, in the fine buckets', async () => {
  const metrics = new Metrics('gc-test');
  const observer = observeGcPauses(metrics, 'gctest');
  try {
    gc();
    gc();
    // gc entries are delivered asynchronously: wait (bounded) until both are in
    let text = '';
    for (let i = 0; i < 200; i++) {
      text = await metrics.text();
      if ((value(text, 'kvfabric_gctest_gc_pause_seconds_count{kind="major"') ?? 0) >= 2) break;
      await sleep(50);
    }
    const major = value(text, 'kvfabric_gctest_gc_pause_seconds_count{kind="major"');
    assert.ok(major !== undefined && major >= 2, `two major pauses recorded, got ${major}`);
    const sum = value(text, 'kvfabric_gctest_gc_pause_seconds_sum{kind="major"')!;
    assert.ok(sum > 0 && sum < 60, `pause total is a plausible time in seconds, got ${sum}`);
    const bounds = text
      .split('\n')
      .filter((l) => l.startsWith('kvfabric_gctest_gc_pause_seconds_bucket{kind="major"'))
      .map((l) => /le="([^"]+)"/.exec(l)![1]);
    assert.deepEqual(bounds, [...GC_PAUSE_BUCKETS_SECONDS.map(String), '+Inf']);
    assert.equal(
      value(text, 'kvfabric_gctest_gc_pause_seconds_bucket{kind="major",otel_scope_name="gc-test",le="+Inf"}'),
      major,
    );
  } finally {
    observer.close();
    observer.close(); // idempotent
    await metrics.shutdown();
  }
});
