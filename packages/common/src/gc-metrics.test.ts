// GC pause metrics: a forced full collection shows up as a major pause in the process's own /metrics text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GC_PAUSE_BUCKETS_SECONDS, GcPauseLog, gcPausesRoute, observeGcPauses } from './gc-metrics.js';
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

test('GcPauseLog: a window lists its pauses exactly, says when older ones were overwritten, and keeps the max', () => {
  const log = new GcPauseLog(4);
  log.record(1000, 0.5, 0);
  log.record(1010, 2.25, 1);
  log.record(1020, 0.75, 0);
  assert.deepEqual(log.between(1005, 1020), { pauses: [{ atMs: 1010, ms: 2.25, kind: 'major' }], complete: true });
  assert.equal(log.maxSince(1015), 0.75);
  assert.equal(log.maxSince(0), 2.25);
  log.record(1030, 0.1, 4);
  log.record(1040, 0.2, 2); // overwrites the pause at 1000
  assert.equal(log.recorded, 5);
  assert.equal(log.between(1000, 2000).complete, false, 'the pause at 1000 is gone');
  assert.deepEqual(
    log.between(1005, 2000).pauses.map((p) => [p.atMs, p.kind]),
    [
      [1010, 'major'],
      [1020, 'minor'],
      [1030, 'other'],
      [1040, 'incremental'],
    ],
  );
  assert.equal(log.between(1005, 2000).complete, true);
  assert.equal(log.maxSince(1011), 0.75);
});

test('gcPausesRoute: the window from the query string, a bad time named', () => {
  const log = new GcPauseLog(8);
  log.record(100, 1, 0);
  log.record(200, 3, 1);
  const route = gcPausesRoute(log);
  const body = route(new URLSearchParams('since=150&until=300')) as { pauses: unknown[]; complete: boolean };
  assert.deepEqual(body.pauses, [{ atMs: 200, ms: 3, kind: 'major' }]);
  assert.equal(body.complete, true);
  assert.throws(() => route(new URLSearchParams('since=soon')), /since: expected a Unix time in milliseconds/);
  assert.throws(() => route(new URLSearchParams('until=')), /until: expected a Unix time/);
});

test('observeGcPauses: the log holds each forced collection with its exact start and duration; the max gauge', async () => {
  const metrics = new Metrics('gc-test-log');
  const observer = observeGcPauses(metrics, 'gclog');
  const from = Date.now() - 1;
  try {
    gc();
    for (let i = 0; i < 200 && observer.log.recorded < 1; i++) await sleep(20);
    const { pauses, complete } = observer.log.between(from, Date.now() + 1);
    assert.ok(complete);
    const major = pauses.filter((p) => p.kind === 'major');
    assert.ok(major.length >= 1, `a major pause logged, got ${JSON.stringify(pauses)}`);
    assert.ok(major[0]!.ms > 0 && major[0]!.ms < 60_000);
    const text = await metrics.text();
    const max = value(text, 'kvfabric_gclog_gc_pause_max_seconds');
    assert.ok(max !== undefined && Math.abs(max - observer.log.maxSince(from) / 1000) < 1e-9, `max gauge ${max}`);
  } finally {
    observer.close();
    await metrics.shutdown();
  }
});
