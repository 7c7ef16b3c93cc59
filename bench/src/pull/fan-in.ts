// pull with 8 readers: 8 engines on node B each pull a different prefix from node A at the same time.
//
// Why this shape: a host runs one node for its 8 GPUs, and when a batch of requests arrives each GPU's engine
// asks for its own prefix; those found on another host are pulled by the one node at once. So production's
// concurrency is 8 prefixes on one puller (the one node's event loop, pull pipeline and connections carry all of
// them), not 8 pulling nodes on one host. The node opens `--streams-per-peer` = 8 connections to the holder here,
// and the reference is iperf3 -P 8: the same number of tcp streams on the same loopback, run before every pull.
import { CpuLedger, capacityRows, type CapacityRow } from '../capacity.js';
import { nowSeconds, type BenchContext } from '../harness.js';
import { iperf3 } from '../peers/iperf3.js';
import { freshHashes } from '../fresh-hashes.js';
import { MiB, engineOn, label, metric, pullLedger, seed, startPair } from './pair.js';

/** Engines pulling at once, and the tcp streams per peer (and iperf3 streams) they share. */
export const READERS = 8;

export interface FanInRep {
  /** Aggregate bytes per second: all readers' bytes over the time until the last one is READY. */
  e2e: number;
  iperf: number;
}

export async function fanIn(
  ctx: BenchContext,
  blockBytes: number,
  blocksPerReader: number,
  reps: number,
  iperfSeconds: number | undefined,
): Promise<{ runs: FanInRep[]; capacity: CapacityRow[] }> {
  const total = READERS * blocksPerReader;
  const bar = ctx.progress(`pull ${READERS} readers × ${blocksPerReader} × ${label(blockBytes)}`, reps + 1);
  // The bench's pool holds little more than the blocks pulled, so the holder's default --grant-pin-budget (50% of
  // it) is less than what 8 sessions pin at once (up to two windows of <= 64 MiB each), and a session whose first
  // window is refused for other readers' grants ends with nothing (apps/node/src/fetch/grant-windows.ts). A
  // production pool is many times its in-flight pulls; here the whole pool may be pinned instead.
  const p = await startPair(total * blockBytes + 128 * MiB, {
    streams: READERS,
    args: ['--grant-pin-budget', '100%'],
  });
  const ns = `bench/pull/${READERS}-readers/${label(blockBytes)}`;
  const out: FanInRep[] = [];
  const ours = pullLedger(p);
  const iperfCpu = new CpuLedger();
  let iperfBytes = 0;
  try {
    const holder = await engineOn(p.a, ns, blockBytes);
    const readers = await Promise.all(Array.from({ length: READERS }, () => engineOn(p.b, ns, blockBytes)));
    bar.tick();
    try {
      for (let r = 0; r < reps; r++) {
        const prefixes = Array.from({ length: READERS }, () => freshHashes(blocksPerReader));
        await seed(p, holder.kv, ns, prefixes.flat());
        const ref = iperfSeconds ? await iperf3(READERS, iperfSeconds) : undefined;
        if (ref) {
          iperfCpu.add('iperf3 receiver', ref.receiverCpuSeconds);
          iperfCpu.add('iperf3 sender', ref.senderCpuSeconds);
          iperfBytes += ref.bytes;
        }
        const bytes0 = await metric(p.b, 'kvfabric_pull_bytes_total');
        const t0 = nowSeconds();
        const answers = await ours.window(true, () =>
          Promise.all(readers.map((e, i) => e.kv.query(prefixes[i]!, { timeoutMs: 120_000 }))),
        );
        const wall = nowSeconds() - t0;
        for (const [i, q] of answers.entries()) {
          if (q.hits !== blocksPerReader) {
            const refused = await metric(p.a, 'kvfabric_peer_grants_refused_total');
            throw new Error(
              `pull bench: reader ${i} got ${q.hits} of ${blocksPerReader} blocks (holder refused ${refused} grants so far)`,
            );
          }
          await readers[i]!.kv.release(q.leaseId);
        }
        const bytes = (await metric(p.b, 'kvfabric_pull_bytes_total')) - bytes0;
        if (bytes !== total * blockBytes)
          throw new Error(`pull bench: ${bytes} bytes pulled by ${READERS} readers, expected ${total * blockBytes}`);
        out.push({ e2e: bytes / wall, iperf: ref?.bytesPerSecond ?? NaN });
        bar.tick();
      }
    } finally {
      for (const e of readers) await e.close();
      await holder.close();
    }
  } finally {
    bar.done();
    await p.close();
  }
  const path = `pull ${READERS} readers × ${blocksPerReader} × ${label(blockBytes)}`;
  return {
    runs: out,
    capacity: [
      ...capacityRows(path, 'kvfabric', ours.seconds, reps * total * blockBytes),
      ...(iperfBytes > 0 ? capacityRows(path, 'reference', iperfCpu.seconds, iperfBytes) : []),
    ],
  };
}
