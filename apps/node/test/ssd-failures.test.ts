// The SSD tier's failure semantics with real node processes: a full SSD evicts its least recently used blocks, a
// drive whose I/O fails is taken out of service while the node keeps serving from DRAM, a tmpfs directory is
// refused at start with a message naming the flag, io_uring refused by the kernel falls back to pread/pwrite
// threads; and a peer pulls blocks the holder has only on SSD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaserverClient } from '@kvfabric/client';
import { runCli, startMetaserver, startNode } from '@kvfabric/testkit';
import { PAGE, advertised, engine, freshHashes, loadBlocks, metric, saveBlocks, until } from './pull-helpers.js';
import { readBack, ssdDir, startSsdNode } from './ssd-helpers.js';

const NS = 'ssd/failures';

test('ssd full: the least recently used SSD blocks are evicted, the newest are served byte-exact', async () => {
  using dir = ssdDir();
  await using node = await startSsdNode({
    poolSize: '4mib',
    paths: [dir.path],
    capacity: '16mib',
    writeMode: 'through',
  });
  await using e = await engine(node, NS);
  const ssdBlocks = (await metric(node, 'kvfabric_ssd_capacity_bytes')) / PAGE;
  const hashes = freshHashes(ssdBlocks + 128);
  const data: Buffer[] = [];
  for (let at = 0; at < hashes.length; at += 32) {
    data.push(...(await saveBlocks(e, hashes.slice(at, at + 32))));
    await until('write-through', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) === data.length);
  }
  assert.equal(await metric(node, 'kvfabric_ssd_evicted_blocks_total'), 128);
  assert.equal(await metric(node, 'kvfabric_ssd_used_bytes'), ssdBlocks * PAGE);
  const oldest = await readBack(e, hashes.slice(0, 16), data, 16);
  assert.equal(oldest.served, 0, 'evicted from DRAM and from SSD');
  const newest = await readBack(e, hashes.slice(128, 256), data.slice(128, 256), 16);
  assert.deepEqual([newest.served, newest.corrupt], [128, 0]);
  assert.equal(await metric(node, 'kvfabric_ssd_dropped_blocks_total'), 0);
});

test('io_uring refused (forced as seccomp would): the node logs why and serves byte-exact through pread/pwrite threads', async () => {
  using dir = ssdDir();
  await using node = await startSsdNode({
    poolSize: '4mib',
    paths: [dir.path],
    writeMode: 'through',
    env: { KVFABRIC_TEST_SSD_URING_REFUSED: '1' }, // io_uring_setup answers EPERM
  });
  const open = JSON.parse(await node.proc.waitForLog(/ssd drive open without io_uring/)) as Record<string, unknown>;
  assert.equal(open.path, dir.path);
  assert.equal(open.engine, 'threads');
  assert.match(String(open.fallbackReason), /^io_uring_queue_init: Operation not permitted/);
  await using e = await engine(node, NS);
  const poolBlocks = (await metric(node, 'kvfabric_pool_capacity_bytes')) / PAGE;
  // twice the pool, written through: the first half is served from SSD, read by the threads
  const hashes = freshHashes(2 * poolBlocks);
  const data: Buffer[] = [];
  for (let at = 0; at < hashes.length; at += 16) {
    data.push(...(await saveBlocks(e, hashes.slice(at, at + 16))));
    await until('write-through', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) === data.length);
  }
  const r = await readBack(e, hashes.slice(0, poolBlocks), data, 16);
  assert.deepEqual([r.served, r.fromSsd, r.corrupt], [poolBlocks, poolBlocks, 0]);
  assert.equal(await metric(node, 'kvfabric_ssd_io_errors_total'), 0);
});

test('writes never hold up saves: a burst past what the writer keeps ahead drops blocks from DRAM, counted', async () => {
  using dir = ssdDir();
  await using node = await startSsdNode({ poolSize: '4mib', paths: [dir.path] });
  await using e = await engine(node, NS);
  const poolBlocks = (await metric(node, 'kvfabric_pool_capacity_bytes')) / PAGE;
  const hashes = freshHashes(2 * poolBlocks);
  // a whole pool, then at once three quarters more: the writer keeps at most the coldest quarter on SSD ahead (and
  // pages it is writing right now are pinned, so the burst is sized to fit beside them)
  const burst = (3 * poolBlocks) / 4;
  const first = await saveBlocks(e, hashes.slice(0, poolBlocks));
  await saveBlocks(e, hashes.slice(poolBlocks, poolBlocks + burst), poolBlocks);
  await until('the evictions counted', async () => (await metric(node, 'kvfabric_pool_evicted_blocks_total')) >= burst);
  const dropped = await metric(node, 'kvfabric_ssd_dropped_blocks_total');
  // the burst evicted `burst` of the first save's blocks; at most the coldest quarter of the pool was on SSD
  assert.ok(dropped >= burst - poolBlocks / 4 && dropped <= burst, `dropped ${dropped}`);
  const r = await readBack(e, hashes.slice(0, poolBlocks), first, 16);
  assert.equal(r.corrupt, 0);
});

test('an I/O error takes the drive out of service with a log line and a metric; DRAM keeps serving', async () => {
  using dir = ssdDir();
  await using node = await startSsdNode({
    poolSize: '4mib',
    paths: [dir.path],
    writeMode: 'through',
    env: { KVFABRIC_TEST_SSD_FAULTS: '40:1000000' }, // 40 page writes go through, then the device fails
  });
  await using e = await engine(node, NS);
  const hashes = freshHashes(64);
  const data: Buffer[] = [];
  for (let at = 0; at < 64; at += 16) data.push(...(await saveBlocks(e, hashes.slice(at, at + 16))));
  await until('the drive out of service', async () => (await metric(node, 'kvfabric_ssd_drives_failed')) === 1);
  await node.proc.waitForLog(/ssd drive taken out of service after an I\/O error/);
  assert.ok((await metric(node, 'kvfabric_ssd_io_errors_total')) >= 1);
  assert.equal(await metric(node, 'kvfabric_ssd_capacity_bytes'), 0);
  const health = await fetch(`http://${node.httpAddr}/health`);
  assert.match(await health.text(), /out of service/);
  const r = await readBack(e, hashes, data, 64);
  assert.deepEqual([r.served, r.corrupt, r.fromSsd], [64, 0, 0], 'every block still served from DRAM');
});

test('two drives: blocks spread over both; an I/O error on one takes only that one out of service', async () => {
  using one = ssdDir();
  using two = ssdDir();
  await using node = await startSsdNode({
    poolSize: '4mib',
    paths: [one.path, two.path],
    writeMode: 'through',
    env: { KVFABRIC_TEST_SSD_FAULTS: `24:1000000:${two.path}` }, // the second drive fails after 24 page writes
  });
  assert.equal(await metric(node, 'kvfabric_ssd_drives_in_service'), 2);
  const capacity = await metric(node, 'kvfabric_ssd_capacity_bytes');
  await using e = await engine(node, NS);
  const hashes = freshHashes(128);
  const data: Buffer[] = [];
  for (let at = 0; at < 128; at += 16) {
    data.push(...(await saveBlocks(e, hashes.slice(at, at + 16))));
    // round robin: 8 of each save's 16 blocks per drive; the round in which the second drive fails loses its 8
    await until('the writer', async () => (await metric(node, 'kvfabric_ssd_written_blocks_total')) >= data.length - 8);
  }
  await node.proc.waitForLog(/ssd drive taken out of service/);
  const failure = node.proc
    .logLines()
    .find((l) => l.msg === 'ssd drive taken out of service after an I/O error; serving from DRAM and the other drives');
  assert.equal(failure?.path, two.path);
  assert.equal(await metric(node, 'kvfabric_ssd_drives_in_service'), 1);
  assert.equal(await metric(node, 'kvfabric_ssd_capacity_bytes'), capacity / 2);
  // everything written after the failure went to the first drive, and what it holds is served byte for byte
  const r = await readBack(e, hashes, data, 16);
  assert.equal(r.corrupt, 0);
  assert.ok(r.fromSsd > 0, `served ${r.served}, ${r.fromSsd} from SSD`);
  // the failed drive's 24 blocks are forgotten, everything else written is on the first drive
  assert.equal(await metric(node, 'kvfabric_ssd_written_blocks_total'), 120);
  assert.equal(await metric(node, 'kvfabric_ssd_blocks'), 96);
});

test('a tmpfs --ssd-path is refused at start, naming the flag and why', async () => {
  await assert.rejects(
    startNode({ args: ['--ssd-path', `/dev/shm/kvf-ssd-${process.pid}`, '--ssd-capacity', '16mib'] }),
    /ssd-path: .*tmpfs/,
  );
});

test('a peer pulls blocks that the holder has only on SSD (the holder promotes them, then grants them)', async () => {
  using dir = ssdDir();
  await using ms = await startMetaserver();
  const meta = new MetaserverClient(ms.addr);
  try {
    const common = { metaserverAddr: ms.addr, args: ['--heartbeat-interval-secs', '0.5'] };
    await using A = await startSsdNode({ ...common, poolSize: '4mib', paths: [dir.path], writeMode: 'through' });
    await using B = await startNode({ ...common, poolSize: '16mib' });
    await using a = await engine(A, NS);
    await using b = await engine(B, NS);
    const hashes = freshHashes(128);
    const data: Buffer[] = [];
    for (let at = 0; at < 128; at += 32) {
      data.push(...(await saveBlocks(a, hashes.slice(at, at + 32))));
      await until('write-through', async () => (await metric(A, 'kvfabric_ssd_written_blocks_total')) === data.length);
    }
    const first = hashes.slice(0, 16);
    await advertised(meta, NS, first, A, 16); // evicted from A's DRAM, still advertised: A holds them on SSD
    const promotedBefore = await metric(A, 'kvfabric_ssd_promoted_blocks_total');
    const q = await b.kv.query(first, { timeoutMs: 30_000 });
    assert.deepEqual([q.hits, q.breakdown.remote], [16, 16]);
    const got = await loadBlocks(b, q.leaseId, 16, 0);
    got.forEach((g, i) => assert.ok(g.equals(data[i]!), `block ${i} differs`));
    assert.equal((await metric(A, 'kvfabric_ssd_promoted_blocks_total')) - promotedBefore, 16);

    // `kvfabric nodes` shows the SSD tier's use next to the pool's (heartbeats carry it)
    const capacity = await metric(A, 'kvfabric_ssd_capacity_bytes');
    await until('a heartbeat with the SSD bytes', async () => {
      const res = await runCli(['nodes', '--metaserver-addr', ms.addr, '--output', 'json']);
      assert.equal(res.code, 0, res.stderr);
      const nodes = (
        JSON.parse(res.stdout) as { nodes: { addr: string; ssdCapacityBytes: number; ssdUsedBytes: number }[] }
      ).nodes;
      const a = nodes.find((n) => n.addr === A.addr);
      const b = nodes.find((n) => n.addr === B.addr);
      return (
        Number(a?.ssdCapacityBytes) === capacity &&
        Number(a?.ssdUsedBytes) === 128 * PAGE &&
        Number(b?.ssdCapacityBytes) === 0
      );
    });
  } finally {
    meta.close();
  }
});
