import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Region } from '../lib/region.js';
import { NativeError } from '../lib/errors.js';

const KiB = 1024;

let counter = 0;
/** A fresh shm object of `size` bytes: its shm name, its /dev/shm path, and cleanup. */
function makeShm(size: number): { name: string; path: string; [Symbol.dispose](): void } {
  const name = `/kvf-region-test-${process.pid}-${counter++}`;
  const path = `/dev/shm${name}`;
  const fd = openSync(path, 'w+', 0o600);
  ftruncateSync(fd, size);
  closeSync(fd);
  return { name, path, [Symbol.dispose]: () => rmSync(path, { force: true }) };
}

function assertCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NativeError, `expected NativeError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('openShm maps the object shared: bytes written by either side are seen by the other', () => {
  using shm = makeShm(256 * KiB);
  using region = Region.openShm(shm.name, 256 * KiB);
  assert.equal(region.sizeBytes, 256 * KiB);
  assert.equal(region.source, `shm:${shm.name}`);
  const data = randomBytes(10_000);
  region.write(5000, data);
  const fd = openSync(shm.path, 'r+');
  try {
    const back = Buffer.alloc(10_000);
    readSync(fd, back, 0, back.length, 5000);
    assert.ok(back.equals(data), 'the file sees region writes');
    const other = randomBytes(4096);
    writeSync(fd, other, 0, other.length, 100 * KiB);
    assert.ok(region.read(100 * KiB, 4096).equals(other), 'the region sees file writes');
  } finally {
    closeSync(fd);
  }
});

test('openPath maps a file by path, including /proc/self/fd/<n>', () => {
  using shm = makeShm(64 * KiB);
  const fd = openSync(shm.path, 'r+');
  try {
    using viaFd = Region.openPath(`/proc/self/fd/${fd}`, 64 * KiB);
    using viaPath = Region.openPath(shm.path, 32 * KiB);
    const data = randomBytes(1000);
    viaFd.write(60 * KiB, data);
    viaPath.write(0, data);
    assert.ok(viaPath.read(0, 1000).equals(viaFd.read(0, 1000)));
    const back = Buffer.alloc(1000);
    readSync(fd, back, 0, 1000, 60 * KiB);
    assert.ok(back.equals(data));
    assertCode(() => viaPath.read(32 * KiB - 10, 11), 'INVALID_ARGUMENT', /exceeds the region size 32768/);
  } finally {
    closeSync(fd);
  }
});

test('missing, too small and badly named objects are refused naming the field', () => {
  using shm = makeShm(4 * KiB);
  assertCode(
    () => Region.openShm(`/kvf-region-test-missing-${process.pid}`, 4096),
    'REGION_INVALID',
    /^name: cannot open shm object "\/kvf-region-test-missing-\d+" read\/write: No such file or directory$/,
  );
  assertCode(
    () => Region.openShm(shm.name, 8 * KiB),
    'REGION_INVALID',
    /^sizeBytes: 8192 exceeds the size of shm object ".*" \(4096 bytes\)$/,
  );
  assertCode(
    () => Region.openPath('/nonexistent/kvf', 4096),
    'REGION_INVALID',
    /^path: cannot open file "\/nonexistent\/kvf"/,
  );
  assertCode(() => Region.openPath('/dev/shm', 4096), 'REGION_INVALID', /^path: cannot open/);
  assertCode(
    () => Region.openShm('no-slash', 4096),
    'INVALID_ARGUMENT',
    /^name: expected a POSIX shm name .*, got "no-slash"$/,
  );
  assertCode(() => Region.openShm('/a/b', 4096), 'INVALID_ARGUMENT', /^name: /);
  assertCode(
    () => Region.openPath('relative/path', 4096),
    'INVALID_ARGUMENT',
    /^path: expected an absolute file path, got "relative\/path"$/,
  );
  assertCode(() => Region.openShm(shm.name, 0), 'INVALID_ARGUMENT', /^sizeBytes: expected a positive integer, got 0$/);
  assertCode(
    () => Region.openShm(shm.name, -3),
    'INVALID_ARGUMENT',
    /^sizeBytes: expected a positive integer, got -3$/,
  );
});

test('close is idempotent and later use throws REGION_INVALID', () => {
  using shm = makeShm(4 * KiB);
  const region = Region.openShm(shm.name, 4 * KiB);
  region.close();
  region.close();
  assert.equal(region.closed, true);
  assertCode(() => region.read(0, 1), 'REGION_INVALID', /after close/);
  assertCode(() => region.write(0, Buffer.alloc(1)), 'REGION_INVALID', /after close/);
});
