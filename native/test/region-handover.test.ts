// The region handover between the engine side (fd-pass.ts: sealed memfd, SCM_RIGHTS) and the node side
// (region-handover.ts): descriptors, credentials, replies, and refusals that close what they received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCommandRing, createSealedMemfd, handOverRegion, handOverRing } from '../lib/fd-pass.js';
import { fdPassBinding } from '../lib/loader.js';
import { Region } from '../lib/region.js';
import {
  HANDOVER_REQUEST,
  RING_HANDOVER_REQUEST,
  RegionHandoverServer,
  SEAL_GROW,
  SEAL_SHRINK,
  type HandoverDecision,
  type HandoverRequest,
} from '../lib/region-handover.js';

const TOKEN = '0123456789abcdef0123456789abcdef';

function server(decide: (req: HandoverRequest) => HandoverDecision) {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-handover-'));
  const path = join(dir, 'engine.sock.regions');
  const srv = RegionHandoverServer.listen(path, decide);
  return {
    path,
    [Symbol.dispose]() {
      srv.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a sealed memfd handed over arrives with the sender credentials; the node maps the same memory', async () => {
  const seen: HandoverRequest[] = [];
  const mapped: Region[] = [];
  using srv = server((req) => {
    seen.push(req);
    mapped.push(Region.fromFd(req.fd, 64 * 1024, 'handed'));
    closeSync(req.fd);
    return { token: TOKEN };
  });
  const fd = createSealedMemfd('kvf-test', 64 * 1024);
  try {
    assert.equal(await handOverRegion(srv.path, fd), TOKEN);
    assert.equal(seen.length, 1);
    const { peer, file } = seen[0]!;
    assert.deepEqual(peer, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    assert.equal(file.regular, true);
    assert.equal(file.readWrite, true);
    assert.equal(file.sizeBytes, 64 * 1024);
    assert.equal(file.seals & (SEAL_SHRINK | SEAL_GROW), SEAL_SHRINK | SEAL_GROW);
    assert.match(file.link, /^\/memfd:kvf-test/);
    writeSync(fd, Buffer.from('written by the engine'), 0, 21, 4096);
    assert.equal(mapped[0]!.read(4096, 21).toString(), 'written by the engine');
    assert.throws(() => fstatSync(seen[0]!.fd), { code: 'EBADF' }, 'the node closed its copy after mapping');
  } finally {
    for (const r of mapped) r.close();
    closeSync(fd);
  }
});

test('a refusal reaches the engine with its code and message, and the node closes the descriptor', async () => {
  let received = -1;
  using srv = server((req) => {
    received = req.fd;
    return { code: 'REGION_INVALID', message: 'region: not good enough' };
  });
  const path = join(tmpdir(), `kvf-handover-file-${process.pid}`);
  const fd = openSync(path, 'w+', 0o600);
  try {
    await assert.rejects(handOverRegion(srv.path, fd), { code: 'REGION_INVALID', message: 'region: not good enough' });
    assert.ok(received >= 0);
    assert.throws(() => fstatSync(received), { code: 'EBADF' });
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
});

test('requests that break the protocol are refused before any decision', async () => {
  let decisions = 0;
  using srv = server(() => {
    decisions++;
    return { token: TOKEN };
  });
  const fd = createSealedMemfd('kvf-test', 4096);
  try {
    const send = async (fds: number[], payload: string) =>
      ((await fdPassBinding().sendFd(srv.path, fds, payload, 10_000)) as Buffer).toString();
    assert.equal(
      await send([fd], 'hello'),
      `ERR INVALID_ARGUMENT payload: expected ${JSON.stringify(HANDOVER_REQUEST)} or ${JSON.stringify(RING_HANDOVER_REQUEST)}, got "hello"`,
    );
    assert.equal(
      await send([fd, fd], HANDOVER_REQUEST),
      'ERR INVALID_ARGUMENT descriptors: expected exactly one (SCM_RIGHTS), got 2',
    );
    assert.equal(
      await send([fd], RING_HANDOVER_REQUEST),
      'ERR INVALID_ARGUMENT descriptors: expected exactly two (the ring memfd, an eventfd) (SCM_RIGHTS), got 1',
    );
    assert.match(
      await send([fd, fd], RING_HANDOVER_REQUEST),
      /^ERR INVALID_ARGUMENT descriptors\[1\]: expected an eventfd, got "\/memfd:kvf-test/,
    );
    assert.equal(decisions, 0);
    await assert.rejects(handOverRegion('/nonexistent/kvf.regions', fd), { code: 'TRANSPORT_UNAVAILABLE' });
    assert.throws(() => createSealedMemfd('bad name', 4096), { code: 'INVALID_ARGUMENT', message: /^name: / });
  } finally {
    closeSync(fd);
  }
});

test('a command ring arrives as its memfd and its eventfd; the decision sees both', async () => {
  const seen: HandoverRequest[] = [];
  using srv = server((req) => {
    seen.push(req);
    return { token: TOKEN };
  });
  const ring = createCommandRing({ name: 'kvf-ring-handover', entries: 4, slotBytes: 64 }, () => {});
  try {
    assert.equal(await handOverRing(srv.path, ring.fd, ring.eventFd), TOKEN);
    assert.equal(seen.length, 1);
    const req = seen[0]!;
    assert.equal(req.file.sizeBytes, ring.sizeBytes);
    assert.ok(req.eventFd !== undefined && req.eventFd !== req.fd);
    assert.ok(fstatSync(req.eventFd).isFile() === false, 'an eventfd, not a file');
    closeSync(req.fd);
    closeSync(req.eventFd);
  } finally {
    ring.close();
  }
});
