import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandedRegions, refusal, type HandedFile } from './handed-regions.js';

const ENGINE = { pid: 42, uid: 1000, gid: 1000 };
const memfd = (seals: number): HandedFile => ({
  regular: true,
  mode: 0o100777,
  ownerUid: 1000,
  sizeBytes: 4096,
  seals,
  readWrite: true,
  link: '/memfd:kv (deleted)',
});
const file = (over: Partial<HandedFile> = {}): HandedFile => ({
  regular: true,
  mode: 0o100600,
  ownerUid: 1000,
  sizeBytes: 4096,
  seals: 1, // tmpfs files carry F_SEAL_SEAL: they cannot be sealed
  readWrite: true,
  link: '/dev/shm/kv',
  ...over,
});

test('policy: a sealed memfd, or a regular file the engine owns, open read/write', () => {
  assert.equal(refusal(memfd(0x2 | 0x4), ENGINE), undefined);
  assert.equal(refusal(memfd(0x1 | 0x2 | 0x4 | 0x8), ENGINE), undefined);
  assert.equal(
    refusal(memfd(0x2), ENGINE),
    'region: memfd "/memfd:kv (deleted)" is not sealed: add F_SEAL_SHRINK and F_SEAL_GROW (fcntl F_ADD_SEALS) before handing it over',
  );
  assert.match(refusal(memfd(0), ENGINE)!, /is not sealed/);
  assert.equal(refusal(file(), ENGINE), undefined);
  assert.equal(
    refusal(file({ ownerUid: 0 }), ENGINE),
    `region: "/dev/shm/kv" is owned by uid 0, not by the engine's uid 1000`,
  );
  assert.equal(refusal(file({ ownerUid: 0 }), { pid: 1, uid: 0, gid: 0 }), undefined, 'root engines may pass any file');
  assert.equal(
    refusal(file({ readWrite: false }), ENGINE),
    'region: "/dev/shm/kv" is not open read/write (the node maps it shared read/write)',
  );
  assert.equal(
    refusal(file({ regular: false, mode: 0o20666, link: '/dev/mem' }), ENGINE),
    'region: expected a memfd or a regular file, got "/dev/mem" (file type 0o20000)',
  );
  const long = refusal(file({ ownerUid: 0, link: `/${'x'.repeat(500)}` }), ENGINE)!;
  assert.ok(long.length < 200, 'the link is echoed truncated');
});

test('tokens: one use, expire (closing the descriptor), bounded; refusals hold nothing', () => {
  let now = 0;
  const closed: number[] = [];
  const regions = new HandedRegions({ closeFd: (fd) => closed.push(fd), ttlMs: 1000, max: 2, now: () => now });
  const a = regions.admit(10, memfd(0x6), ENGINE);
  assert.ok('token' in a);
  assert.match(a.token, /^[0-9a-f]{32}$/);
  assert.deepEqual(regions.admit(11, memfd(0), ENGINE), {
    code: 'REGION_INVALID',
    message:
      'region: memfd "/memfd:kv (deleted)" is not sealed: add F_SEAL_SHRINK and F_SEAL_GROW (fcntl F_ADD_SEALS) before handing it over',
  });
  assert.equal(regions.size, 1);
  assert.deepEqual(regions.take(a.token), { fd: 10, peer: ENGINE, label: '/memfd:kv (deleted) (sealed)' });
  assert.throws(() => regions.take(a.token), { code: 'REGION_INVALID', message: /already used/ });
  const b = regions.admit(12, file(), ENGINE);
  const c = regions.admit(13, file(), ENGINE);
  assert.ok('token' in b && 'token' in c);
  assert.deepEqual(regions.admit(14, file(), ENGINE), {
    code: 'REGION_INVALID',
    message: 'region: 2 handed-over regions are waiting for RegisterInstance; register or retry later',
  });
  now = 1000;
  assert.throws(() => regions.take(b.token), { code: 'REGION_INVALID', message: /expired after 1 s/ });
  assert.deepEqual(closed.sort(), [12, 13], 'expired descriptors are closed');
  assert.equal(regions.size, 0);
  const d = regions.admit(15, file(), ENGINE);
  assert.ok('token' in d);
  regions.close();
  assert.deepEqual(closed.sort(), [12, 13, 15]);
});
