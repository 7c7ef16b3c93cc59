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
  fromServer(
    'counter',
    'kvfabric_peer_summed_pages_total',
    'pages summed at their first grant (those a save did not sum; each page once)',
    (s) => s.counters.summedPages,
  );
  fromServer('gauge', 'kvfabric_peer_grants_active', 'live grants', (s) => s.grants.size);
  fromServer(
    'gauge',
    'kvfabric_peer_grant_pinned_blocks',
    'blocks pinned by grants (live ones, and ended ones whose answers are still being written)',
    (s) => s.grants.pinnedBlocks,
  );
  fromServer(
    'gauge',
    'kvfabric_peer_grant_pinned_bytes',
    'pool bytes pinned by grants, counted like kvfabric_peer_grant_pinned_blocks',
    (s) => s.grants.pinnedBytes,
  );
  fromServer(
    'gauge',
    'kvfabric_peer_grant_pin_budget_bytes',
    'pool bytes all grants together may pin (--grant-pin-budget)',
    (s) => s.grants.pinBudgetBytes,
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
  m.createObservableCounter('kvfabric_peer_grants_refused_total', {
    description: 'grants refused, by limit (per_peer: live grants of one reader; pin_budget: --grant-pin-budget)',
  }).addCallback((r) => {
    const s = server();
    if (!s) return;
    r.observe(s.grants.counters.refused, { why: 'per_peer' });
    r.observe(s.grants.counters.overBudget, { why: 'pin_budget' });
  });
  m.createObservableCounter('kvfabric_peer_readers_forgotten_total', {
    description: 'readers forgotten, by why (idle: --reader-idle-secs; displaced: by a new reader past --max-readers)',
  }).addCallback((r) => {
    const s = server();
    if (!s) return;
    r.observe(s.readers.counters.idle, { why: 'idle' });
    r.observe(s.readers.counters.displaced, { why: 'displaced' });
  });
  fromServer(
    'counter',
    'kvfabric_peer_handshakes_refused_total',
    'handshakes refused because every admitted reader holds live grants (--max-readers)',
    (s) => s.readers.counters.refused,
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
    'peer connections and reads refused (no live grant, wrong secret, too many connections)',
    'refused',
  );
  fromTransport(
    'counter',
    'kvfabric_transport_reads_answered_total',
    'tcp: read requests accepted under a live grant',
    'readsAnswered',
  );
  fromTransport(
    'gauge',
    'kvfabric_transport_answers_queued',
    'tcp: accepted answers not yet written (each keeps its grant pages pinned)',
    'answersQueued',
  );
  fromTransport(
    'counter',
    'kvfabric_transport_stalled_connections_total',
    'tcp: reader connections closed for taking no answer for --reader-stall-secs',
    'stalledClosed',
  );
  fromTransport(
    'counter',
    'kvfabric_transport_accept_failures_total',
    'tcp: accept() failures for want of file descriptors or memory (accepting backs off)',
    'acceptFailures',
  );
  m.createObservableGauge('kvfabric_transport_accept_failing', {
    description: 'tcp: 1 while accepting peer connections fails (EMFILE, ENFILE, ENOBUFS, ENOMEM)',
  }).addCallback((r) => {
    const t = transport();
    if (t) r.observe(t.counters().acceptErrno === 0 ? 0 : 1);
  });
}
