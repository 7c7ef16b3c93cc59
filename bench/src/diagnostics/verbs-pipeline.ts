// Diagnostic for the open gap in `npm run bench -- rdma`: on soft-RoCE under QEMU, one connection with four readv
// batches in flight runs at a quarter of one batch at a time, although the NIC holds as many READs posted in both
// (the histogram below, sampled from counters().readsPosted). Run inside the VM:
//   bash scripts/rdma-vm.sh -- node --import tsx bench/src/diagnostics/verbs-pipeline.ts
import { Pool, VerbsTransport } from '@kvfabric/native';

const size = 64 * 1024;
for (const [workers, per] of [[4, 32], [1, 128], [4, 32], [1, 128]] as const) {
  const pr = Pool.create({ sizeBytes: 64 << 20 });
  const ps = Pool.create({ sizeBytes: 64 << 20 });
  const o = { qpsPerPeer: 1, readDepth: 16, postDepth: 32, ackTimeout: 18, windowBytes: size };
  const r = await VerbsTransport.create({ pool: pr, nics: [process.env.KVF_RDMA_A_DEV ?? 'rxa'], ...o });
  const s = await VerbsTransport.create({ pool: ps, nics: [process.env.KVF_RDMA_B_DEV ?? 'rxb'], ...o });
  await r.completeConnect('S', await s.acceptPeer('R', await r.beginConnect('S')));
  const n = 512;
  const rem = [...ps.allocMany(size, n)!];
  const loc = [...pr.allocMany(size, n)!];
  const key = await s.addGrant(1, 'R', new Float64Array(rem.flatMap((x) => [x, size])), Date.now() + 3600e3);
  const hist = new Map<number, number>();
  const lat: number[] = [];
  const timer = setInterval(() => {
    const v = r.counters().readsPosted;
    hist.set(v, (hist.get(v) ?? 0) + 1);
  }, 1);
  const t0 = performance.now();
  let moved = 0;
  let next = 0;
  let issued = 0;
  const total = 16 << 20;
  const worker = async () => {
    while (issued < total) {
      const j = (next++ * per) % n;
      issued += per * size;
      const a = performance.now();
      const b = await r.readv('S', 1, new Float64Array(rem.slice(j, j + per)), new Float64Array(loc.slice(j, j + per)), new Float64Array(per).fill(size), { grantKey: key });
      moved += b.bytes;
      lat.push(performance.now() - a);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const secs = (performance.now() - t0) / 1000;
  clearInterval(timer);
  const samples = [...hist.values()].reduce((a, b) => a + b, 0);
  const share = (lo: number, hi: number) => Math.round((100 * [...hist].filter(([k]) => k >= lo && k <= hi).reduce((a, [, c]) => a + c, 0)) / samples);
  console.log(`${workers} x ${per} pages: ${(moved / secs / 1e6).toFixed(1)} MB/s; READs posted 0: ${share(0, 0)}%, 1-16: ${share(1, 16)}%, 17-32: ${share(17, 32)}%; readv ms ${lat.slice(0, 8).map((x) => x.toFixed(0)).join(', ')}`);
  await r.close();
  await s.close();
  pr.close();
  ps.close();
}
