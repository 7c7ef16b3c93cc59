// The node's real native data path for unit tests that run no processes: a small pool (one page a slab, so page
// counts are exact), a copy engine, and engine regions as sealed memfds handed over the way an engine running as
// root hands them over. The test reads and writes a region through its own descriptor (pread/pwrite on the memfd:
// the same memory the node has mapped).
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { createSealedMemfd } from '@kvfabric/native/fd-pass';
import { DataPath } from '../data-path.js';
import { HandedRegions } from '../handed-regions.js';

/** A DataPath over `poolBytes` of pool cut into slabs of `slabBytes` (default 4 KiB), with 2 copy threads. */
export function testDataPath(poolBytes = 1 << 20, slabBytes = 4096): DataPath {
  return new DataPath({ poolBytes, slabBytes, copyThreads: 2 });
}

/** A handed-regions table closing real descriptors. */
export function testRegions(): HandedRegions {
  return new HandedRegions({ closeFd: closeSync, ttlMs: 60_000, max: 1024 });
}

/** An engine's region seen from the test: the token that registers it, and reads and writes of its bytes. */
export interface TestRegion {
  token: string;
  write(offset: number, data: Uint8Array): void;
  read(offset: number, length: number): Buffer;
  close(): void;
}

/** Hands over a fresh sealed memfd of `sizeBytes` named `name`, as an engine running as root would. */
export function handOver(regions: HandedRegions, name: string, sizeBytes: number): TestRegion {
  const fd = createSealedMemfd(name.replace(/[^A-Za-z0-9._-]/g, '_') || 'region', sizeBytes);
  // The node gets its own descriptor of the same memfd (an engine sends one over SCM_RIGHTS); the test keeps `fd`.
  const nodeFd = openSync(`/proc/self/fd/${fd}`, 'r+');
  const file = {
    regular: true,
    mode: 0o100600,
    ownerUid: 0,
    sizeBytes,
    seals: 0x2 | 0x4,
    readWrite: true,
    link: `/memfd:${name} (deleted)`,
  };
  const admitted = regions.admit(nodeFd, file, { pid: process.pid, uid: 0, gid: 0 });
  if (!('token' in admitted)) throw new Error(admitted.message);
  return {
    token: admitted.token,
    write(offset, data) {
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, offset + done);
    },
    read(offset, length) {
      const out = Buffer.alloc(length);
      let done = 0;
      while (done < length) done += readSync(fd, out, done, length - done, offset + done);
      return out;
    },
    close: () => closeSync(fd),
  };
}
