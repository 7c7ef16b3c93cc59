// kvfabric_peer_* (the serving side: handshakes, grants, pins) and kvfabric_transport_* (the native transport's
// counters: bytes read and served, refusals, errors), read at scrape time.
import type { Metrics } from '@kvfabric/common/observability';
import type { Transport } from '@kvfabric/native';
import type { PeerServer } from './peer-server.js';

export function peerMetrics(
  metrics: Metrics,
  server: () => PeerServer | undefined,
  transport: () => Transport | undefined,
): void {
  const m = metrics.meter;
  const fromServer = (
    kind: 'counter' | 'gauge',
    name: string,
    description: string,
    read: (s: PeerServer) => number,
  ) => {
    const inst =
      kind === 'counter'
        ? m.createObservableCounter(name, { description })
        : m.createObservableGauge(name, { description });
    inst.addCallback((r) => {
      const s = server();
      if (s) r.observe(read(s));
    });
  };
  fromServer(
    'counter',
    'kvfabric_peer_handshakes_total',
    'readers admitted (transport handshakes served)',
    (s) => s.counters.handshakes,
  );
  fromServer(
    'counter',
    'kvfabric_peer_prepare_reads_total',
    'PrepareRead calls with a valid session',
    (s) => s.counters.prepareReads,
  );
  fromServer(
    'counter',
    'kvfabric_peer_granted_blocks_total',
    'blocks granted to readers',
    (s) => s.counters.grantedBlocks,
  );
  fromServer(
    'counter',
    'kvfabric_peer_empty_grants_total',
    'PrepareReads for blocks this node does not hold',
    (s) => s.counters.emptyGrants,
  );
  fromServer('gauge', 'kvfabric_peer_grants_active', 'live grants', (s) => s.grants.size);
  fromServer(
    'gauge',
    'kvfabric_peer_grant_pinned_blocks',
    'blocks pinned by live grants',
    (s) => s.grants.pinnedBlocks,
  );
  fromServer('gauge', 'kvfabric_peer_readers', 'readers with a live session', (s) => s.peers);
  m.createObservableCounter('kvfabric_peer_grants_ended_total', { description: 'grants ended, by how' }).addCallback(
    (r) => {
      const s = server();
      if (!s) return;
      const c = s.grants.counters;
      r.observe(c.released, { how: 'released' });
      r.observe(c.expired, { how: 'expired' });
      r.observe(c.dropped, { how: 'dropped' });
    },
  );
  fromServer(
    'counter',
    'kvfabric_peer_grants_refused_total',
    'grants refused (per-peer limit)',
    (s) => s.grants.counters.refused,
  );

  const fromTransport = (
    kind: 'counter' | 'gauge',
    name: string,
    description: string,
    key: keyof ReturnType<Transport['counters']>,
  ) => {
    const inst =
      kind === 'counter'
        ? m.createObservableCounter(name, { description })
        : m.createObservableGauge(name, { description });
    inst.addCallback((r) => {
      const t = transport();
      if (t) r.observe(t.counters()[key]);
    });
  };
  fromTransport(
    'counter',
    'kvfabric_transport_read_bytes_total',
    'bytes read from peers (batches that completed)',
    'bytesRead',
  );
  fromTransport('counter', 'kvfabric_transport_served_bytes_total', 'bytes served to peers (tcp)', 'bytesServed');
  fromTransport('gauge', 'kvfabric_transport_reads_in_flight', 'read batches not yet settled', 'readsInFlight');
  fromTransport('counter', 'kvfabric_transport_batches_ok_total', 'read batches completed', 'batchesOk');
  fromTransport('counter', 'kvfabric_transport_batches_failed_total', 'read batches failed', 'batchesFailed');
  fromTransport('counter', 'kvfabric_transport_errors_total', 'connection, protocol and completion errors', 'errors');
  fromTransport(
    'counter',
    'kvfabric_transport_refused_total',
    'peer connections and reads refused (no live grant, wrong secret)',
    'refused',
  );
}
