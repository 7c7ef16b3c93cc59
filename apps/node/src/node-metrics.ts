// kvfabric_pool_*, kvfabric_index_*, kvfabric_save_*, kvfabric_load_*, kvfabric_region_*, kvfabric_lease_* for the node. Counts
// live in the pure cores as plain numbers; these observable instruments read them at scrape time.
import { DURATION_BUCKETS_SECONDS, type Histogram, type Metrics } from '@kvfabric/common/observability';
import type { EngineCore } from './engine-core.js';
import type { PagePool } from './data-path.js';
import type { HandedRegions } from './handed-regions.js';

export interface NodeInstruments {
  saveDuration: Histogram;
  loadDuration: Histogram;
  queryDuration: Histogram;
}

export function nodeMetrics(
  metrics: Metrics,
  core: EngineCore,
  pool: PagePool,
  regions: HandedRegions,
): NodeInstruments {
  const m = metrics.meter;
  const gauge = (name: string, description: string, read: () => number, unit?: string) =>
    m.createObservableGauge(name, { description, unit }).addCallback((r) => r.observe(read()));
  const counter = (name: string, description: string, read: () => number) =>
    m.createObservableCounter(name, { description }).addCallback((r) => r.observe(read()));
  const c = core.counters;

  gauge('kvfabric_pool_capacity_bytes', 'pool capacity', () => pool.stats().capacityBytes, 'By');
  gauge('kvfabric_pool_used_bytes', 'bytes in allocated pool pages', () => pool.stats().usedBytes, 'By');
  counter(
    'kvfabric_pool_evicted_blocks_total',
    'blocks evicted to make room',
    () => core.evictor.counters.evictedBlocks,
  );
  counter('kvfabric_pool_evicted_bytes_total', 'bytes evicted to make room', () => core.evictor.counters.evictedBytes);
  counter(
    'kvfabric_pool_exhausted_total',
    'allocations that found nothing evictable',
    () => core.evictor.counters.exhausted,
  );

  gauge('kvfabric_index_blocks', 'sealed (servable) blocks', () => core.index.stats().sealed);
  gauge('kvfabric_index_partial_blocks', 'blocks waiting for more shards', () => core.index.stats().partial);
  gauge('kvfabric_index_pinned_blocks', 'blocks pinned by leases, grants or copies', () => core.index.stats().pinned);
  gauge('kvfabric_index_instances', 'registered engine instances', () => core.instanceCount);
  gauge(
    'kvfabric_index_gpu_instances',
    'registered engine instances whose region is GPU memory (CUDA IPC)',
    () => core.gpuInstanceCount,
  );
  counter('kvfabric_index_queries_total', 'Query calls', () => c.queries);
  counter('kvfabric_index_query_hashes_total', 'hashes asked by Query', () => c.queryHashes);
  counter('kvfabric_index_query_hits_total', 'prefix hits answered by Query', () => c.queryHits);

  counter('kvfabric_save_calls_total', 'Save calls that copied or checked blocks', () => c.saveCalls);
  counter('kvfabric_save_blocks_total', 'shard pages written by Save', () => c.savedBlocks);
  counter('kvfabric_save_bytes_total', 'bytes written by Save', () => c.savedBytes);
  counter('kvfabric_save_sealed_blocks_total', 'blocks sealed by Save', () => c.sealedBlocks);
  counter('kvfabric_save_present_blocks_total', 'Save items already held (nothing copied)', () => c.presentBlocks);
  counter('kvfabric_save_no_space_blocks_total', 'Save items refused for lack of space', () => c.noSpaceBlocks);

  counter('kvfabric_load_calls_total', 'Load calls', () => c.loadCalls);
  counter('kvfabric_load_blocks_total', 'blocks scattered by Load', () => c.loadedBlocks);
  counter('kvfabric_load_bytes_total', 'bytes scattered by Load', () => c.loadedBytes);

  const r = regions.counters;
  counter(
    'kvfabric_region_handovers_total',
    'region descriptors engines handed over and the node accepted',
    () => r.admitted,
  );
  counter(
    'kvfabric_region_refused_total',
    'region descriptors refused (not sealed, not owned, not read/write)',
    () => r.refused,
  );
  counter('kvfabric_region_expired_total', 'handed-over regions no registration claimed in time', () => r.expired);
  gauge('kvfabric_region_unclaimed', 'handed-over regions waiting for their registration', () => regions.size);
  counter(
    'kvfabric_region_copy_failures_total',
    "saves and loads failed on their engine's region (its file shrank under the copy, or the GPU failed a copy)",
    () => c.regionFailures,
  );

  gauge('kvfabric_engine_rings', "engines' command rings attached", () => core.rings.size);
  counter(
    'kvfabric_engine_ring_retries_total',
    'ring queries answered RETRY (their missing suffix may be fetched: asked again over gRPC)',
    () => core.rings.retries,
  );

  const l = core.leases; // native: each read takes the table's lock once
  gauge('kvfabric_lease_active', 'live leases', () => l.size);
  counter('kvfabric_lease_created_total', 'leases handed out', () => l.counters().created);
  counter('kvfabric_lease_consumed_total', 'leases loaded by every rank', () => l.counters().consumed);
  counter('kvfabric_lease_expired_total', 'leases that expired', () => l.counters().expired);
  counter('kvfabric_lease_released_total', 'leases released early or with their engine', () => l.counters().released);

  const hist = (name: string, description: string) =>
    m.createHistogram(name, { description, unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS } });
  return {
    saveDuration: hist('kvfabric_save_duration_seconds', 'Save copy time'),
    loadDuration: hist('kvfabric_load_duration_seconds', 'Load copy time'),
    queryDuration: hist('kvfabric_index_query_duration_seconds', 'Query time'),
  };
}
