// kvfabric_metaserver_* for the node's reporter (what it sent, netted, dropped) and kvfabric_reporter_* for how it
// follows the metaserver leader (re-advertise passes and blocks, leader changes seen through etcd).
import type { Metrics } from '@kvfabric/common/observability';
import type { Reporter } from './reporter.js';

export function reporterMetrics(metrics: Metrics, reporter: Reporter): void {
  const m = metrics.meter;
  const c = reporter.counters;
  const counter = (name: string, description: string, read: () => number) =>
    m.createObservableCounter(name, { description }).addCallback((r) => r.observe(read()));
  counter('kvfabric_metaserver_inserted_blocks_total', 'block inserts sent to the metaserver', () => c.inserted);
  counter('kvfabric_metaserver_removed_blocks_total', 'block removals sent to the metaserver', () => c.removed);
  counter('kvfabric_metaserver_netted_total', 'insert/remove pairs cancelled before sending', () => c.netted);
  counter(
    'kvfabric_metaserver_dropped_total',
    'block updates dropped (metaserver down or queue full)',
    () => c.dropped,
  );
  counter(
    'kvfabric_metaserver_requeued_removes_total',
    'block removals the metaserver did not answer, pending again (a re-advertise does not remove)',
    () => c.requeued,
  );
  counter(
    'kvfabric_reporter_readvertised_blocks_total',
    'resident blocks re-advertised to a new metaserver epoch',
    () => c.readvertised,
  );
  counter(
    'kvfabric_reporter_readvertises_total',
    're-advertise passes (new epoch, registration, or healing dropped updates)',
    () => c.readvertises,
  );
  counter(
    'kvfabric_reporter_leader_changes_total',
    'metaserver leader changes seen through etcd (HA)',
    () => c.leaderChanges,
  );
  counter('kvfabric_metaserver_heartbeats_total', 'heartbeats answered', () => c.heartbeats);
  counter('kvfabric_metaserver_heartbeat_failures_total', 'heartbeats that failed', () => c.heartbeatFailures);
  counter('kvfabric_metaserver_epoch_changes_total', 'new metaserver epochs seen', () => c.epochChanges);
  m.createObservableGauge('kvfabric_metaserver_connected', {
    description: '1 when the last heartbeat succeeded',
  }).addCallback((r) => r.observe(reporter.connected ? 1 : 0));
  m.createObservableGauge('kvfabric_metaserver_pending_updates', {
    description: 'netted block updates waiting to be sent',
  }).addCallback((r) => r.observe(reporter.pendingOps));
}
