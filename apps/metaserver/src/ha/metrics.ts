// Leadership metrics, registered in both modes (a single metaserver always leads, and never changes):
//   kvfabric_metaserver_is_leader            1 while this process serves metaserver RPCs
//   kvfabric_metaserver_leader_changes_total leader changes this replica has seen
//   kvfabric_metaserver_leader_age_seconds   time since the current leader was elected (as seen by this replica)
//   kvfabric_metaserver_etcd_reachable       HA mode: 1 when the last etcd call succeeded
//   kvfabric_metaserver_lease_remaining_seconds HA mode: how long this leader may still serve without a keepalive
import type { Metrics } from '@kvfabric/common/observability';

export interface LeadershipSource {
  serving(): boolean;
  leaderChanges(): number;
  /** Wall clock (ms) of the last leader change seen, undefined when no leader is known. */
  lastChangeMs(): number | undefined;
  /** HA mode only. */
  etcd?: { reachable(): boolean; leaseRemainingMs(): number };
}

export function registerLeadershipMetrics(
  metrics: Metrics,
  source: LeadershipSource,
  clock: () => number = Date.now,
): void {
  const m = metrics.meter;
  m.createObservableGauge('kvfabric_metaserver_is_leader', {
    description: '1 while this process serves metaserver RPCs (leader with a valid lease)',
  }).addCallback((r) => r.observe(source.serving() ? 1 : 0));
  m.createObservableCounter('kvfabric_metaserver_leader_changes_total', {
    description: 'Leader changes seen by this replica',
  }).addCallback((r) => r.observe(source.leaderChanges()));
  m.createObservableGauge('kvfabric_metaserver_leader_age_seconds', {
    description: 'Time since the current leader was elected',
    unit: 's',
  }).addCallback((r) => {
    const since = source.lastChangeMs();
    if (since !== undefined) r.observe(Math.max(0, (clock() - since) / 1000));
  });
  const etcd = source.etcd;
  if (!etcd) return;
  m.createObservableGauge('kvfabric_metaserver_etcd_reachable', {
    description: '1 when the last etcd call succeeded',
  }).addCallback((r) => r.observe(etcd.reachable() ? 1 : 0));
  m.createObservableGauge('kvfabric_metaserver_lease_remaining_seconds', {
    description: 'How long this leader may serve without another keepalive',
    unit: 's',
  }).addCallback((r) => r.observe(etcd.leaseRemainingMs() / 1000));
}
