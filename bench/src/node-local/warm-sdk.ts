// JIT warm-up of the engine SDK's per-call code. V8 optimises a function only after many calls, and node-local's
// reps make few (16 per 256 MiB rep at 256 KiB blocks, 2 at 2 MiB): with warm-up by reps alone, the timed reps
// measured the SDK's calls interpreted, and V8 compiling them on this process's background threads (10-20 ms of
// CPU per function), not the steady state of an engine that serves for hours. The calls here take the same paths
// with the same argument types (a Uint32Array of ids, packed hashes, 2 calls in flight, local-only queries) but move one
// block each: the same hash every time (saves after the first answer PRESENT), so they take no pool space.
import type { KvEngine } from '@kvfabric/client';
import { freshPacked } from '../fresh-hashes.js';

/** Calls of each kind (save, query, load); V8 had tiered every SDK function up after ~800 in a trace (--trace-opt). */
export const WARM_SDK_CALLS = 1024;
const ROUND = 16;

export async function warmSdk(
  kv: KvEngine,
  inFlight: (n: number, fn: (i: number) => Promise<void>) => Promise<void>,
  calls = WARM_SDK_CALLS,
): Promise<void> {
  const ids = Uint32Array.of(0);
  const hashes = freshPacked(1);
  for (let done = 0; done < calls; done += ROUND) {
    await inFlight(ROUND, async () => {
      await kv.save(ids, hashes);
    });
    const leases: string[] = [];
    for (let i = 0; i < ROUND; i++) {
      const q = await kv.query(hashes, { localOnly: true });
      if (q.hits !== 1) throw new Error(`node-local warm-up: query hit ${q.hits} of 1`);
      leases.push(q.leaseId);
    }
    await inFlight(ROUND, (i) => kv.load(leases[i]!, ids).then(() => undefined));
  }
}
