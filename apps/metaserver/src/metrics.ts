// kvfabric_metaserver_* gauges and sweep counters. Gauges read counters the store keeps incrementally (blocks,
// owners, sessions), so a scrape costs O(nodes), never O(index).
import { DURATION_BUCKETS_SECONDS, type Counter, type Histogram, type Metrics } from '@kvfabric/common/observability';
import type { MetaStore, SweepResult } from './store/index.js';

export interface SweepInstruments {
  record(result: SweepResult, seconds: number): void;
}

/** `current` returns the live store (HA mode swaps it on every election). */
export function registerStoreMetrics(metrics: Metrics, current: () => MetaStore): SweepInstruments {
  const m = metrics.meter;
  m.createObservableGauge('kvfabric_metaserver_blocks', {
    description: 'Distinct (namespace, hash) entries in the index',
  }).addCallback((r) => r.observe(current().blocks));
  m.createObservableGauge('kvfabric_metaserver_owners', {
    description: '(namespace, hash, node) ownerships in the index',
  }).addCallback((r) => r.observe(current().owners));
  m.createObservableGauge('kvfabric_metaserver_nodes', { description: 'Node sessions by state' }).addCallback((r) => {
    const { live, stale } = current().nodeCounts();
    r.observe(live, { state: 'live' });
    r.observe(stale, { state: 'stale' });
  });
  m.createObservableGauge('kvfabric_metaserver_namespaces', {
    description: 'Namespaces with at least one block',
  }).addCallback((r) => r.observe(current().namespaceCount));
  m.createObservableGauge('kvfabric_metaserver_index_bytes', {
    description: 'Memory held by the index typed arrays',
    unit: 'By',
  }).addCallback((r) => r.observe(current().memoryBytes()));
  const sweeps: Counter = m.createCounter('kvfabric_metaserver_sweeps_total', {
    description: 'Completed sweep passes',
  });
  const expired: Counter = m.createCounter('kvfabric_metaserver_expired_owners_total', {
    description: 'Ownerships dropped with the sessions of nodes silent past the TTL',
  });
  const dropped: Counter = m.createCounter('kvfabric_metaserver_dropped_sessions_total', {
    description: 'Sessions forgotten after their nodes were silent past the TTL',
  });
  const duration: Histogram = m.createHistogram('kvfabric_metaserver_sweep_duration_seconds', {
    description: 'Wall time of one sweep pass (including yields to the event loop)',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
  });
  return {
    record(result, seconds) {
      sweeps.add(1);
      expired.add(result.droppedOwners);
      dropped.add(result.droppedSessions);
      duration.record(seconds);
    },
  };
}
