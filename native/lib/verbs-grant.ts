// The grant key a serving node hands a reader over verbs: which memory window (rkey, and the serving QP it is bound
// to, named by its position in the connection) covers which range of the serving pool. Encoded natively
// (src/verbs_grant.cc); parsed here to validate what arrives from the network before readv uses it.
//
// Layout (little-endian): u8 version (1), u8 mode (1: memory windows, 2: the pool's own rkey), u32 count, then per
// window u64 offset, u64 length, u32 rkey, u16 qp.
import { MaterialReader } from './transport.js';

export interface VerbsGrantWindow {
  offset: number;
  length: number;
  rkey: number;
  qp: number;
}

export interface VerbsGrantKey {
  mode: 'windows' | 'pool-rkey';
  windows: VerbsGrantWindow[];
}

export const MAX_GRANT_WINDOWS = 1 << 20;

export function parseVerbsGrantKey(buf: Buffer, field = 'grantKey'): VerbsGrantKey {
  const r = new MaterialReader(buf, field);
  const version = r.u8('version');
  if (version !== 1) r.fail(`unsupported grant key version ${version}`);
  const mode = r.u8('mode');
  if (mode !== 1 && mode !== 2) r.fail(`mode: expected 1 (windows) or 2 (pool rkey), got ${mode}`);
  const count = r.u32('count');
  if (count > MAX_GRANT_WINDOWS) r.fail(`count ${count} exceeds ${MAX_GRANT_WINDOWS}`);
  const windows: VerbsGrantWindow[] = [];
  for (let i = 0; i < count; i++) {
    const offset = r.u64(`windows[${i}].offset`);
    const length = r.u64(`windows[${i}].length`);
    if (length === 0n || offset + length > BigInt(Number.MAX_SAFE_INTEGER))
      r.fail(`windows[${i}]: bad range ${offset}+${length}`);
    windows.push({
      offset: Number(offset),
      length: Number(length),
      rkey: r.u32(`windows[${i}].rkey`),
      qp: r.u16(`windows[${i}].qp`),
    });
  }
  r.end();
  return { mode: mode === 1 ? 'windows' : 'pool-rkey', windows };
}

/** The inverse of parseVerbsGrantKey (the node never builds keys itself: tests use it to forge them). */
export function encodeVerbsGrantKey(key: VerbsGrantKey): Buffer {
  const b = Buffer.alloc(6 + key.windows.length * 22);
  b.writeUInt8(1, 0);
  b.writeUInt8(key.mode === 'windows' ? 1 : 2, 1);
  b.writeUInt32LE(key.windows.length, 2);
  key.windows.forEach((w, i) => {
    const o = 6 + i * 22;
    b.writeBigUInt64LE(BigInt(w.offset), o);
    b.writeBigUInt64LE(BigInt(w.length), o + 8);
    b.writeUInt32LE(w.rkey, o + 16);
    b.writeUInt16LE(w.qp, o + 20);
  });
  return b;
}
