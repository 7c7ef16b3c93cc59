// The SSD tier's journal records, as bytes (pure: no I/O). The journal is append-only; each record is
//
//   magic "KVJ1" (4) | kind (1) | body length (4, LE) | body | CRC-32 of kind, length and body (4, LE)
//
// A `put` says a block's pages are durable at an extent of one SSD file (namespace, its geometry, the hash, the
// extent, each shard's XXH3-64 content sum); a `drop` says an extent no longer holds anything. A put is appended
// only after its data is durable, so a put never names bytes that were not written. Replay keeps, per extent and
// per block, the last put not dropped since; a record whose CRC does not match, or that is cut short (a torn write
// at a crash), is dropped and counted, and decoding resynchronises at the next magic.
import type { NamespaceLayout } from '../namespaces.js';

export const JOURNAL_MAGIC = Buffer.from('KVJ1', 'latin1');
const HEADER = 9; // magic, kind, body length
const TRAILER = 4;
/** Larger bodies are not records (a corrupt length): resynchronise instead of waiting for bytes. */
const MAX_BODY = 4096;
const KIND_PUT = 1;
const KIND_DROP = 2;

export interface SsdExtent {
  /** Which SSD file (the position of its path in --ssd-path). */
  file: number;
  /** Byte offset of the extent in that file. */
  offset: number;
}

export interface SsdPut extends SsdExtent {
  kind: 'put';
  namespace: string;
  layout: NamespaceLayout;
  hash: Buffer;
  /** (lo, hi) XXH3-64 halves per shard page. */
  checksums: Uint32Array;
}

export interface SsdDrop extends SsdExtent {
  kind: 'drop';
}

export type SsdRecord = SsdPut | SsdDrop;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Bytes a record takes. */
function recordBytes(r: SsdRecord): number {
  return HEADER + bodyBytes(r) + TRAILER;
}

function bodyBytes(r: SsdRecord): number {
  if (r.kind === 'drop') return 10;
  const ns = Buffer.byteLength(r.namespace, 'utf8');
  return 2 + 8 + 2 + 1 + 2 + 4 + 1 + ns + 1 + r.hash.length + 8 * (r.checksums.length / 2);
}

/** Writes one record at `at` of `out` (room checked by the caller); returns the offset after it. */
function writeRecord(r: SsdRecord, out: Buffer, start: number): number {
  const bodyLen = bodyBytes(r);
  JOURNAL_MAGIC.copy(out, start);
  out[start + 4] = r.kind === 'put' ? KIND_PUT : KIND_DROP;
  out.writeUInt32LE(bodyLen, start + 5);
  let at = start + HEADER;
  at = out.writeUInt16LE(r.file, at);
  at = out.writeDoubleLE(r.offset, at);
  if (r.kind === 'put') {
    const l = r.layout;
    at = out.writeUInt16LE(l.tpSize, at);
    at = out.writeUInt8(l.replicated ? 1 : 0, at);
    at = out.writeUInt16LE(l.segments, at);
    at = out.writeUInt32LE(l.segmentBytes, at);
    const nsLen = out.write(r.namespace, at + 1, 'utf8');
    at = out.writeUInt8(nsLen, at) + nsLen;
    at = out.writeUInt8(r.hash.length, at);
    at += r.hash.copy(out, at);
    for (const v of r.checksums) at = out.writeUInt32LE(v, at);
  }
  return out.writeUInt32LE(crc32(out, start + 4, at), at);
}

/** Records as bytes, back to back in one buffer (an append's or a compaction's batch). */
export function encodeRecords(records: readonly SsdRecord[]): Buffer {
  let total = 0;
  for (const r of records) total += recordBytes(r);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const r of records) at = writeRecord(r, out, at);
  return out;
}

/** One record as bytes. */
export function encodeRecord(r: SsdRecord): Buffer {
  return encodeRecords([r]);
}

/** Shards of a layout (pages per block). */
export function layoutShards(l: NamespaceLayout): number {
  return l.replicated ? 1 : l.tpSize;
}

function decodeBody(kind: number, b: Buffer): SsdRecord | undefined {
  if (kind === KIND_DROP)
    return b.length === 10 ? { kind: 'drop', file: b.readUInt16LE(0), offset: b.readDoubleLE(2) } : undefined;
  if (kind !== KIND_PUT || b.length < 22) return undefined;
  let at = 0;
  const file = b.readUInt16LE(at);
  const offset = b.readDoubleLE((at += 2));
  const tpSize = b.readUInt16LE((at += 8));
  const replicated = b.readUInt8((at += 2)) === 1;
  const segments = b.readUInt16LE((at += 1));
  const segmentBytes = b.readUInt32LE((at += 2));
  const nsLen = b.readUInt8((at += 4));
  at += 1;
  if (at + nsLen + 1 > b.length) return undefined;
  const namespace = b.toString('utf8', at, (at += nsLen));
  const hashLen = b.readUInt8(at++);
  const layout = { tpSize, replicated, segments, segmentBytes };
  const shards = layoutShards(layout);
  if (hashLen < 1 || at + hashLen + 8 * shards !== b.length || !Number.isSafeInteger(offset) || offset < 0)
    return undefined;
  const hash = Buffer.from(b.subarray(at, (at += hashLen)));
  const checksums = new Uint32Array(2 * shards);
  for (let i = 0; i < checksums.length; i++, at += 4) checksums[i] = b.readUInt32LE(at);
  return { kind: 'put', file, offset, namespace, layout, hash, checksums };
}

export interface DecodeResult {
  /** Bytes of `buf` decoded or skipped; the rest (a record cut short) waits for more bytes or is a torn tail. */
  consumed: number;
  /** Records dropped: CRC mismatch or malformed. */
  dropped: number;
}

/** Decodes the records of `buf` in order. `final`: no bytes follow (what is left over is a torn tail). */
export function decodeRecords(buf: Buffer, onRecord: (r: SsdRecord) => void, final: boolean): DecodeResult {
  let at = 0;
  let dropped = 0;
  const resync = (): void => {
    dropped++;
    const next = buf.indexOf(JOURNAL_MAGIC, at + 1);
    // no magic further on: the rest is garbage (final) or may end in the first bytes of the next record's magic
    at = next >= 0 ? next : final ? buf.length : Math.max(at + 1, buf.length - (JOURNAL_MAGIC.length - 1));
  };
  while (at + HEADER <= buf.length) {
    if (buf.compare(JOURNAL_MAGIC, 0, 4, at, at + 4) !== 0) {
      resync();
      continue;
    }
    const bodyLen = buf.readUInt32LE(at + 5);
    if (bodyLen > MAX_BODY) {
      resync();
      continue;
    }
    const end = at + HEADER + bodyLen + TRAILER;
    if (end > buf.length) {
      if (!final) break; // wait for the rest
      resync(); // cut short at the end, or a corrupt length: records may still follow
      continue;
    }
    const crcAt = end - TRAILER;
    const record =
      crc32(buf, at + 4, crcAt) === buf.readUInt32LE(crcAt)
        ? decodeBody(buf[at + 4]!, buf.subarray(at + HEADER, crcAt))
        : undefined;
    if (!record) {
      resync();
      continue;
    }
    onRecord(record);
    at = end;
  }
  if (final && at < buf.length) {
    dropped++; // a torn tail
    at = buf.length;
  }
  return { consumed: at, dropped };
}

/**
 * The puts of `count` blocks of one namespace and layout on `file`, as bytes (a write round's records, from its
 * arrays): block k is hash k of `packed` (`hashLen` bytes each) at offsets[k], its sums at checksums[2 * shards * k,
 * 2 * shards * (k + 1)).
 */
export function encodePuts(
  file: number,
  namespace: string,
  layout: NamespaceLayout,
  packed: Uint8Array,
  hashLen: number,
  count: number,
  offsets: Float64Array,
  checksums: Uint32Array,
): Buffer {
  // every record of the run has the same length and the same fields up to the hash: written from the arrays, with
  // no object per record
  const per = 2 * layoutShards(layout);
  const ns = Buffer.from(namespace, 'utf8');
  const bodyLen = 2 + 8 + 2 + 1 + 2 + 4 + 1 + ns.length + 1 + hashLen + 4 * per;
  const recLen = HEADER + bodyLen + TRAILER;
  const out = Buffer.allocUnsafe(count * recLen);
  for (let k = 0; k < count; k++) {
    const start = k * recLen;
    JOURNAL_MAGIC.copy(out, start);
    out[start + 4] = KIND_PUT;
    out.writeUInt32LE(bodyLen, start + 5);
    let at = out.writeUInt16LE(file, start + HEADER);
    at = out.writeDoubleLE(offsets[k]!, at);
    at = out.writeUInt16LE(layout.tpSize, at);
    at = out.writeUInt8(layout.replicated ? 1 : 0, at);
    at = out.writeUInt16LE(layout.segments, at);
    at = out.writeUInt32LE(layout.segmentBytes, at);
    at = out.writeUInt8(ns.length, at);
    at += ns.copy(out, at);
    at = out.writeUInt8(hashLen, at);
    for (let i = 0, from = k * hashLen; i < hashLen; i++) out[at++] = packed[from + i]!;
    for (let i = 0, from = k * per; i < per; i++) at = out.writeUInt32LE(checksums[from + i]!, at);
    out.writeUInt32LE(crc32(out, start + 4, at), at);
  }
  return out;
}
