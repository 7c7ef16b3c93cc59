// A tiny canonical CBOR encoder (RFC 8949 §4.2.1 "core deterministic encoding") for the few value kinds
// that vLLM's block hashing feeds to Python `cbor2.dumps(value, canonical=True)`:
//
// | JavaScript                        | Python            | CBOR (major type, head)                        |
// |-----------------------------------|-------------------|------------------------------------------------|
// | null                              | None              | simple 22: `f6`                                |
// | boolean                           | bool              | `f4` / `f5`                                    |
// | safe integer number, bigint       | int               | major 0 (n >= 0) or 1 (-1-n), shortest head    |
// | string                            | str               | major 3, UTF-8 bytes, definite length          |
// | Uint8Array / Buffer               | bytes             | major 2, definite length                       |
// | readonly array                    | tuple / list      | major 4, definite length, items in order       |
//
// Shortest head: argument < 24 lives in the initial byte; < 2^8 → `+24` and 1 byte; < 2^16 → `+25` and 2 bytes;
// < 2^32 → `+26` and 4 bytes; else `+27` and 8 bytes, all big-endian. cbor2 writes ints this way canonical or not,
// and writes tuples exactly like lists (arrays are never sorted; only maps and sets are, which we do not support).
// Integers outside [-2^64, 2^64-1] (cbor2 would use bignum tags 2/3), floats, maps, undefined and other objects
// are refused: they never occur in vLLM block hashes and guessing their encoding would silently break parity.
// Why not npm `cbor2`: it encodes a Node `Buffer` through `Buffer#toJSON` (a map `{type, data}`), not as a byte
// string, so every digest fed back as a Buffer would silently hash wrong; the tests still use it as a cross-check.
import { invalid } from './errors.js';

export type CborValue = null | boolean | number | bigint | string | Uint8Array | readonly CborValue[];

const MAJOR_UINT = 0;
const MAJOR_NINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const U64_MAX = (1n << 64n) - 1n;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Renders any value for an error message (`invalid()` JSON-encodes, which fails on bigint and hides NaN). */
export function shown(value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function' || typeof value === 'symbol') return String(value);
  return value;
}

/** Appends canonical CBOR items to a growing buffer. */
export class CborWriter {
  private buf = Buffer.allocUnsafe(256);
  private len = 0;

  private reserve(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + extra));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Writes an initial byte with the shortest argument encoding. `arg` must be in [0, 2^64-1]. */
  head(major: number, arg: number | bigint): this {
    const ib = major << 5;
    this.reserve(9);
    if (typeof arg === 'number' && arg < 24) {
      this.buf[this.len++] = ib | arg;
    } else if (typeof arg === 'number' && arg <= 0xff) {
      this.buf[this.len++] = ib | 24;
      this.buf[this.len++] = arg;
    } else if (typeof arg === 'number' && arg <= 0xffff) {
      this.buf[this.len++] = ib | 25;
      this.len = this.buf.writeUInt16BE(arg, this.len);
    } else if (typeof arg === 'number' && arg <= 0xffffffff) {
      this.buf[this.len++] = ib | 26;
      this.len = this.buf.writeUInt32BE(arg, this.len);
    } else {
      const big = BigInt(arg);
      if (big <= 0xffffffffn) return this.head(major, Number(big));
      this.buf[this.len++] = ib | 27;
      this.len = this.buf.writeBigUInt64BE(big, this.len);
    }
    return this;
  }

  /** An integer, as major 0 or major 1 (-1-n). */
  int(value: number | bigint, field = 'value'): this {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw invalid(field, 'expected a safe integer (floats are not supported)', shown(value));
    }
    if (typeof value === 'number') return value >= 0 ? this.head(MAJOR_UINT, value) : this.head(MAJOR_NINT, -1 - value);
    if (value > U64_MAX || value < -U64_MAX - 1n) {
      throw invalid(field, 'expected an integer in [-2^64, 2^64-1]', shown(value));
    }
    return value >= 0n ? this.head(MAJOR_UINT, value) : this.head(MAJOR_NINT, -1n - value);
  }

  bytes(value: Uint8Array): this {
    this.head(MAJOR_BYTES, value.length);
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  text(value: string, field = 'value'): this {
    // A lone surrogate has no UTF-8 form (Python refuses to encode it); Buffer would silently write U+FFFD.
    if (LONE_SURROGATE.test(value)) throw invalid(field, 'expected a well-formed Unicode string', value);
    return this.bytesOf(MAJOR_TEXT, Buffer.from(value, 'utf8'));
  }

  arrayHeader(length: number): this {
    return this.head(MAJOR_ARRAY, length);
  }

  /** Any supported value; `field` names it in errors (`extra-keys[1][0]`). */
  value(value: CborValue, field = 'value'): this {
    if (value === null) return this.simple(0xf6);
    if (value === false) return this.simple(0xf4);
    if (value === true) return this.simple(0xf5);
    if (typeof value === 'number' || typeof value === 'bigint') return this.int(value, field);
    if (typeof value === 'string') return this.text(value, field);
    if (value instanceof Uint8Array) return this.bytes(value);
    if (Array.isArray(value)) {
      this.arrayHeader(value.length);
      value.forEach((item: CborValue, i: number) => this.value(item, `${field}[${i}]`));
      return this;
    }
    throw invalid(field, 'expected null, boolean, integer, string, bytes or array', shown(value));
  }

  /** The encoded bytes (a copy, so the writer may be dropped). */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }

  private simple(byte: number): this {
    this.reserve(1);
    this.buf[this.len++] = byte;
    return this;
  }

  private bytesOf(major: number, payload: Buffer): this {
    this.head(major, payload.length);
    this.reserve(payload.length);
    payload.copy(this.buf, this.len);
    this.len += payload.length;
    return this;
  }
}

/** Canonical CBOR of one value, byte-identical to Python `cbor2.dumps(value, canonical=True)` for the kinds above. */
export function encodeCanonical(value: CborValue, field = 'value'): Buffer {
  return new CborWriter().value(value, field).finish();
}
