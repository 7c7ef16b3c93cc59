// What a local engine can and cannot do to the node (issue 12: "SIGBUS kills the node", "confused deputy", the
// engine socket's mode), against a real kvfabric-node process. A second user is `nobody` (65534) through setpriv
// (the suite runs as root, as CI does); Python (socket.send_fds) stands in for a vLLM connector, which also shows
// the handover protocol is usable from it.
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, ftruncateSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { EngineClient } from '@kvfabric/proto/node';
import { EngineConnection, KvEngine, KvRegion, kvLayout, type KvLayoutSpec } from '@kvfabric/client';
import { startNode, type NodeHandle } from '@kvfabric/testkit';

const LAYOUT: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 4096, numBlocks: 32 }; // 32 KiB pages
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const hashes = (tag: string, from: number, n: number) =>
  Array.from({ length: n }, (_, i) => Buffer.from(`${tag}-${from + i}`.padEnd(32, '.')));

/** An engine in Python: hands over a descriptor (kind: a memfd sealed or not, or a file it opens), prints the reply. */
const PY_ENGINE = `
import fcntl, os, socket, sys
sock_path, kind, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == 'file':
    fd = os.open(sys.argv[4], os.O_RDWR)
else:
    fd = os.memfd_create('py-kv', os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if kind == 'sealed-memfd':
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sock_path)
socket.send_fds(s, [b'kvfabric-region/1'], [fd])
print(s.recv(512).decode(), end='')
`;

function pyEngine(node: NodeHandle, args: string[]) {
  const r = spawnSync('python3', ['-c', PY_ENGINE, `${node.engineSocket}.regions`, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same as `nobody` (65534), in node with the SDK's addon (any interpreter a second user can run will do). */
const NOBODY_ENGINE = `
const [addon, sockPath, kind, size, file] = process.argv.slice(1);
const fdpass = require(addon);
const fd = kind === 'file' ? require('node:fs').openSync(file, 'r+') : fdpass.createSealedMemfd('nobody-kv', Number(size));
fdpass.sendFd(sockPath, [fd], 'kvfabric-region/1', 10000).then(
  (reply) => process.stdout.write(reply.toString()),
  (err) => { console.error(err.message); process.exit(1); },
);`;
const FDPASS_ADDON = fileURLToPath(new URL('../../../native/build/Release/kvfabric_fdpass.node', import.meta.url));

function nobodyEngine(node: NodeHandle, args: string[]) {
  const cmd = [process.execPath, '-e', NOBODY_ENGINE, FDPASS_ADDON, `${node.engineSocket}.regions`, ...args];
  const r = spawnSync('setpriv', [...NOBODY, ...cmd], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function registerRequest(instanceId: string, token: string) {
  const g = kvLayout(LAYOUT);
  return {
    instanceId,
    engineId: '',
    namespace: 'trust',
    tpSize: 1,
    tpRank: 0,
    worldSize: 0,
    replicated: false,
    geometry: {
      segmentOffsets: g.segmentOffsets.map(BigInt),
      segmentBytes: BigInt(g.segmentBytes),
      blockStrideBytes: BigInt(g.blockStrideBytes),
      numBlocks: g.numBlocks,
    },
    region: { token, sizeBytes: BigInt(g.sizeBytes) },
  };
}

test('regions: an unsealed memfd or a file the engine does not own is refused; a sealed one from Python registers', async () => {
  await using node = await startNode({ poolSize: '64mib', args: ['--engine-socket-mode', '0666'] });
  chmodSync(dirname(node.engineSocket), 0o755); // let nobody reach the socket
  const size = String(kvLayout(LAYOUT).sizeBytes);

  const unsealed = pyEngine(node, ['memfd', size]);
  assert.equal(unsealed.status, 0, unsealed.stderr);
  assert.equal(
    unsealed.stdout,
    'ERR REGION_INVALID region: memfd "/memfd:py-kv (deleted)" is not sealed: add F_SEAL_SHRINK and F_SEAL_GROW (fcntl F_ADD_SEALS) before handing it over',
  );

  // The confused deputy, turned around: a file root owns (world-writable, so nobody can open it) is not nobody's
  // to hand over; and a root-only file nobody cannot even open, so there is nothing to pass.
  const rootFile = `/dev/shm/kvf-trust-root-${process.pid}`;
  const fd = openSync(rootFile, 'w+', 0o666);
  ftruncateSync(fd, Number(size));
  closeSync(fd);
  chmodSync(rootFile, 0o666);
  try {
    const foreign = nobodyEngine(node, ['file', size, rootFile]);
    assert.equal(foreign.status, 0, foreign.stderr);
    assert.equal(
      foreign.stdout,
      `ERR REGION_INVALID region: "${rootFile}" is owned by uid 0, not by the engine's uid 65534`,
    );
    chmodSync(rootFile, 0o600);
    const secret = nobodyEngine(node, ['file', size, rootFile]);
    assert.notEqual(secret.status, 0);
    assert.match(secret.stderr, /EACCES: permission denied/);
  } finally {
    rmSync(rootFile, { force: true });
  }

  const sealed = pyEngine(node, ['sealed-memfd', size]);
  const sealedByNobody = nobodyEngine(node, ['sealed-memfd', size]);
  assert.match(sealedByNobody.stdout, /^OK [0-9a-f]{32}$/, sealedByNobody.stderr);
  assert.equal(sealed.status, 0, sealed.stderr);
  const token = /^OK ([0-9a-f]{32})$/.exec(sealed.stdout)?.[1];
  assert.ok(token, sealed.stdout);
  const conn = new EngineConnection(node.engineSocket);
  try {
    const res = await conn.call<object, { instanceKey: string }>('registerInstance', registerRequest('py', token));
    assert.match(res.instanceKey, /^[0-9a-f]{32}$/);
    await assert.rejects(conn.call('registerInstance', registerRequest('py-again', token)), {
      code: 'REGION_INVALID',
      message: /names no handed-over region \(unknown, already used/,
    });
    assert.equal((await conn.status()).instances, 1);
  } finally {
    conn.close();
  }
  const metrics = await (await fetch(`http://${node.httpAddr}/metrics`)).text();
  assert.match(metrics, /^kvfabric_region_refused_total(\{[^}]*\})? 2$/m);
  assert.match(metrics, /^kvfabric_region_handovers_total(\{[^}]*\})? 2$/m, 'from Python and from nobody');
  assert.match(metrics, /^kvfabric_region_unclaimed(\{[^}]*\})? 1$/m, "nobody's region is not registered");
  const refusals = node.proc.logLines().filter((l) => l.msg === 'region refused');
  assert.equal(refusals.length, 2);
  assert.deepEqual((refusals[1]!.peer as { uid: number }).uid, 65534);
});

test('instances: another connection can neither unregister, use, nor hold the session of an instance', async () => {
  await using node = await startNode({ poolSize: '64mib' });
  const region = KvRegion.create({ layout: LAYOUT });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'trust', region, instanceId: 'victim' });
  const other = new EngineConnection(node.engineSocket);
  try {
    const denied = { code: 'INSTANCE_FOREIGN', message: /^instance_id: "victim" was registered by another caller/ };
    await assert.rejects(other.call('unregisterInstance', { instanceId: 'victim' }), denied);
    other.instanceKey = 'f'.repeat(32); // a guess
    await assert.rejects(other.call('unregisterInstance', { instanceId: 'victim' }), {
      code: 'INSTANCE_FOREIGN',
      message: /kvfabric-instance-key does not match/,
    });
    await assert.rejects(other.call('release', { instanceId: 'victim', leaseId: 'x' }), denied);
    // A Session stream for the instance (whose end would drop it) is refused too.
    const session = new EngineClient(`unix:${node.engineSocket}`, grpc.credentials.createInsecure()).session();
    const refused = await new Promise<grpc.ServiceError>((resolve) => {
      session.on('error', resolve);
      session.write({ instanceId: 'victim' });
    });
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED);
    // The owner still works, byte for byte, and only it may unregister.
    region.writeBlock(0, Buffer.alloc(region.geometry.blockBytes, 7));
    assert.equal((await kv.save([0], hashes('own', 0, 1))).stored, 1);
    assert.equal((await other.status()).instances, 1);
    await kv.close();
    assert.equal((await other.status()).instances, 0);
  } finally {
    other.close();
    await kv.close();
    region.close();
  }
});

test('engine sockets: explicit mode and group on both sockets; a user outside them cannot connect', async () => {
  await using strict = await startNode({ poolSize: '16mib' });
  chmodSync(dirname(strict.engineSocket), 0o755);
  for (const path of [strict.engineSocket, `${strict.engineSocket}.regions`]) {
    const st = statSync(path);
    assert.equal(st.mode & 0o777, 0o660, `${path}: default mode`);
    assert.equal(st.gid, process.getgid!(), `${path}: the node's group by default`);
  }
  const outsider = nobodyEngine(strict, ['sealed-memfd', '4096']);
  assert.notEqual(outsider.status, 0);
  assert.match(outsider.stderr, /cannot connect to .*\.regions: Permission denied/);

  const daemonGid = Number(/^daemon:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))![1]);
  await using grouped = await startNode({
    poolSize: '16mib',
    args: ['--engine-socket-mode', '0640', '--engine-socket-group', 'daemon'],
  });
  for (const path of [grouped.engineSocket, `${grouped.engineSocket}.regions`]) {
    const st = statSync(path);
    assert.equal(st.mode & 0o777, 0o640, path);
    assert.equal(st.gid, daemonGid, path);
  }
});

/** A thread that shrinks the file to 0 and grows it back, over and over, until terminated. */
function truncator(path: string, size: number): Worker {
  const code = `
    const { openSync, ftruncateSync } = require('node:fs');
    const fd = openSync(${JSON.stringify(path)}, 'r+');
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (;;) { ftruncateSync(fd, 0); Atomics.wait(nap, 0, 0, 2); ftruncateSync(fd, ${size}); Atomics.wait(nap, 0, 0, 2); }`;
  return new Worker(code, { eval: true });
}

test('a region file truncated during saves fails those saves, logged, and the node keeps serving', async () => {
  // 256 KiB pages, 64 MiB per save of every block: each copy is a wide window for the truncation to land in.
  const layout: KvLayoutSpec = { numLayers: 4, kvSplit: true, bytesPerLayerBlock: 32 * 1024, numBlocks: 256 };
  await using node = await startNode({ poolSize: '160mib' });
  const region = KvRegion.create({ layout, dir: '/dev/shm' }); // a plain file: it can be truncated
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'trunc', region });
  const all = Array.from({ length: layout.numBlocks }, (_, i) => i);
  const worker = truncator(region.path!, region.sizeBytes);
  let busErrors = 0;
  try {
    for (let round = 0; round < 2000 && busErrors === 0; round++) {
      try {
        await kv.save(all, hashes(`r${round}`, 0, all.length));
      } catch (err) {
        const e = err as Error & { code: string };
        assert.equal(e.code, 'REGION_INVALID', e.message);
        if (/bus error \(SIGBUS\)/.test(e.message)) busErrors++;
      }
    }
  } finally {
    await worker.terminate();
  }
  assert.equal(busErrors, 1, 'a save met the truncation mid-copy');
  assert.equal(node.proc.running, true, 'the node survived');
  // On the command ring the failure reaches the node's log and metrics with its next batch of events: wait for it.
  const logged = () =>
    node.proc.logLines().filter((l) => l.msg === 'save failed: region' && /SIGBUS/.test(String(l.err))).length;
  const failures = async () =>
    Number(
      /^kvfabric_region_copy_failures_total(?:\{[^}]*\})? (\d+)$/m.exec(
        await (await fetch(`http://${node.httpAddr}/metrics`)).text(),
      )?.[1],
    );
  const deadline = Date.now() + 60_000; // generous: a busy machine only makes this slower
  while ((logged() === 0 || (await failures()) < 1) && Date.now() < deadline) await sleep(20);
  assert.ok(logged() >= 1, 'the failure is in the log');
  assert.ok((await failures()) >= 1, 'and in the metrics');
  // Whole again: the same engine saves and loads byte-exact blocks.
  ftruncateSync(region.descriptor, region.sizeBytes);
  const data = randomBytes(region.geometry.blockBytes);
  region.writeBlock(5, data);
  const saved = await kv.save([5], hashes('after', 0, 1));
  assert.equal(saved.stored, 1);
  const q = await kv.query(hashes('after', 0, 1), { localOnly: true });
  assert.equal(q.hits, 1);
  assert.deepEqual(await kv.load(q.leaseId, [9]), { loaded: 1, bytes: region.geometry.blockBytes });
  assert.ok(region.readBlock(9).equals(data));
  await kv.close();
  region.close();
});
