// kvfabric_ssd_* for the node's SSD tier. Counts live in the tier as plain numbers; these observable instruments
// read them at scrape time. The I/O duration histogram is fed by the tier per native batch.
import { DURATION_BUCKETS_SECONDS, type Metrics } from '@kvfabric/common/observability';
import type { SsdTier } from './ssd-tier.js';

export function ssdMetrics(metrics: Metrics, tier: SsdTier): void {
  const m = metrics.meter;
  const gauge = (name: string, description: string, read: () => number, unit?: string) =>
    m.createObservableGauge(name, { description, unit }).addCallback((r) => r.observe(read()));
  const counter = (name: string, description: string, read: () => number) =>
    m.createObservableCounter(name, { description }).addCallback((r) => r.observe(read()));
  const c = tier.counters;
  gauge('kvfabric_ssd_capacity_bytes', 'SSD tier capacity (drives in service)', () => tier.capacityBytes, 'By');
  gauge('kvfabric_ssd_used_bytes', 'bytes of SSD extents holding blocks', () => tier.usedBytes, 'By');
  gauge('kvfabric_ssd_blocks', 'blocks on SSD', () => tier.catalog.size);
  gauge('kvfabric_ssd_drives_in_service', 'SSD drives (--ssd-path) in service', () => tier.drivesInService());
  gauge(
    'kvfabric_ssd_drives_failed',
    'SSD drives taken out of service after an I/O error',
    () => tier.drives.length - tier.drivesInService(),
  );
  counter('kvfabric_ssd_written_blocks_total', 'blocks written to SSD', () => c.writtenBlocks);
  counter('kvfabric_ssd_written_bytes_total', 'page bytes written to SSD', () => c.writtenBytes);
  counter(
    'kvfabric_ssd_promoted_blocks_total',
    'blocks read back from SSD into the pool (promotions)',
    () => c.promotedBlocks,
  );
  counter('kvfabric_ssd_read_bytes_total', 'page bytes read from SSD', () => c.readBytes);
  counter(
    'kvfabric_ssd_evicted_blocks_total',
    'SSD blocks evicted (least recently used) to make room',
    () => c.evictedBlocks,
  );
  counter('kvfabric_ssd_dropped_blocks_total', 'blocks DRAM evicted before they reached SSD', () => c.droppedBlocks);
  counter(
    'kvfabric_ssd_checksum_mismatch_blocks_total',
    'SSD blocks whose bytes differed from their sum (dropped)',
    () => c.mismatchedBlocks,
  );
  counter(
    'kvfabric_ssd_geometry_dropped_blocks_total',
    'SSD blocks not reused: their namespace geometry changed',
    () => c.geometryDroppedBlocks,
  );
  counter('kvfabric_ssd_io_errors_total', 'SSD I/O errors (each takes its drive out of service)', () => c.ioErrors);
  gauge('kvfabric_ssd_recovered_blocks', 'blocks recovered from the journals at start', () => c.recoveredBlocks);
  gauge(
    'kvfabric_ssd_replay_dropped_records',
    'journal records dropped at start (torn, damaged, unclaimable)',
    () => c.replayDroppedRecords,
  );
  gauge('kvfabric_ssd_replay_duration_seconds', 'time the journal replay took at start', () => c.replaySeconds, 's');
  const hist = m.createHistogram('kvfabric_ssd_io_duration_seconds', {
    description: 'SSD batch time (write: until durable; read: until verified), per op',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
  });
  tier.observeIo = (op, seconds) => hist.record(seconds, { op });
}
