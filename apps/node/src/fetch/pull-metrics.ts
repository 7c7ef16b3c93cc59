// kvfabric_pull_* for the reading side of remote pulls. The RemoteFetcher sums its ended and live pull sessions; these
// observable instruments read them at scrape time. Every failure case has its own `reason` label.
import { DURATION_BUCKETS_SECONDS, type Metrics } from '@kvfabric/common/observability';
import type { RemoteFetcher } from './fetcher.js';
import { PULL_FAILURES } from './pull-types.js';
import type { PeerLinks } from './peer-links.js';

/** Registers the instruments; returns the fetch duration recorder for the fetcher. */
export function pullMetrics(
  metrics: Metrics,
  fetcher: () => RemoteFetcher | undefined,
  links: () => PeerLinks | undefined,
): (seconds: number) => void {
  const m = metrics.meter;
  const counter = (name: string, description: string, read: (f: RemoteFetcher) => number) =>
    m.createObservableCounter(name, { description }).addCallback((r) => {
      const f = fetcher();
      if (f) r.observe(read(f));
    });
  counter('kvfabric_pull_fetches_total', 'query suffixes looked for on peers', (f) => f.counters.fetches);
  counter('kvfabric_pull_grants_total', 'grants read from peers', (f) => f.counters.pulls);
  counter('kvfabric_pull_blocks_total', 'blocks pulled from peers and sealed', (f) => f.counters.blocks);
  counter('kvfabric_pull_bytes_total', 'bytes pulled from peers into sealed blocks', (f) => f.counters.bytes);
  counter('kvfabric_pull_misses_total', 'missing runs no live peer holds', (f) => f.counters.misses);
  counter(
    'kvfabric_pull_waited_blocks_total',
    'blocks a query waited for because another pull was fetching them',
    (f) => f.counters.waitedBlocks,
  );
  counter(
    'kvfabric_pull_verified_pages_total',
    "pulled pages that matched their holder's checksum before sealing",
    (f) => f.counters.verifiedPages,
  );
  counter(
    'kvfabric_pull_checksum_mismatch_blocks_total',
    "pulled blocks dropped because a page differed from its holder's checksum (the holder turns suspect)",
    (f) => f.counters.mismatchedBlocks,
  );
  m.createObservableGauge('kvfabric_pull_suspect_peers', {
    description: 'holders not pulled from because they served a page that differed from its checksum',
  }).addCallback((r) => {
    const f = fetcher();
    if (f) r.observe(f.suspects().length);
  });
  m.createObservableGauge('kvfabric_pull_in_flight_blocks', {
    description: 'blocks being read from peers now',
  }).addCallback((r) => {
    const f = fetcher();
    if (f) r.observe(f.counters.inFlightBlocks);
  });
  m.createObservableCounter('kvfabric_pull_failures_total', {
    description: 'pull failures by reason (the query gets the shorter hit)',
  }).addCallback((r) => {
    const f = fetcher();
    if (f) for (const reason of PULL_FAILURES) r.observe(f.counters.failures[reason], { reason });
  });
  m.createObservableCounter('kvfabric_pull_handshakes_total', {
    description: 'transport handshakes with serving peers',
  }).addCallback((r) => {
    const l = links();
    if (l) {
      r.observe(l.counters.handshakes, { outcome: 'ok' });
      r.observe(l.counters.handshakeFailures, { outcome: 'failed' });
    }
  });
  const h = m.createHistogram('kvfabric_pull_duration_seconds', {
    description: 'time to fill a query suffix from peers',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
  });
  return (s) => h.record(s);
}
