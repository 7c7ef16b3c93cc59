// Hand-written protobuf codecs for the metaserver's hot messages (QueryPrefix and QueryPrefixStream, both ways),
// wire-compatible with the generated ones (metaserver.proto) but cheaper per call: a request is decoded straight off
// the received buffer (the hashes stay a view of it, a namespace equal to the previous one reuses its string), and
// an answer is sized first and written into one buffer (no writer object, no chunk list, no copy at the end).
// `MetaserverWire` is the generated service definition with these codecs in place; servers and clients use it
// instead of `MetaserverService`. Everything else about the service is the generated code.
import type { HashList, ItemError } from './gen/kvfabric/v1/common.js';
import {
  MetaserverService,
  type NodePrefix,
  type QueryPrefixRequest,
  type QueryPrefixResponse,
  type QueryPrefixStreamRequest,
  type QueryPrefixStreamResponse,
} from './gen/kvfabric/v1/metaserver.js';

const LEN = 2;
const VARINT = 0;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// ---- reading: one cursor over the buffer being decoded (decoding never yields, so one is enough)

let buf: Buffer = Buffer.alloc(0);
let pos = 0;

function fail(what: string): never {
  throw new Error(`invalid protobuf message: ${what} at byte ${pos}`);
}

/** A varint's low 32 bits (uint32 semantics, as the generated decoders). */
function varint32(): number {
  let v = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    if (shift < 32) v |= (b & 0x7f) << shift;
    if (b < 0x80) return v >>> 0;
  }
  return fail('varint longer than 10 bytes');
}

/** A uint64 varint, exact. */
function varint64(): bigint {
  let lo = 0; // bits 0..48, exact as a double
  let shift = 0;
  for (; shift < 49; shift += 7) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    lo += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return BigInt(lo);
  }
  let big = BigInt(lo);
  for (; shift < 70; shift += 7) {
    if (pos >= buf.length) fail('truncated varint');
    const b = buf[pos++]!;
    big |= BigInt(b & 0x7f) << BigInt(shift);
    if (b < 0x80) return BigInt.asUintN(64, big);
  }
  return fail('varint longer than 10 bytes');
}

/** The end of a length-delimited field starting at pos. */
function lengthEnd(end: number): number {
  const n = varint32();
  if (n > end - pos) fail('length past the end of the message');
  return pos + n;
}

function skip(wireType: number, end: number): void {
  if (wireType === VARINT) varint32();
  else if (wireType === 1) pos += 8;
  else if (wireType === LEN) pos = lengthEnd(end);
  else if (wireType === 5) pos += 4;
  else fail(`unsupported wire type ${wireType}`);
  if (pos > end) fail('field past the end of the message');
}

function text(end: number): string {
  const e = lengthEnd(end);
  const s = e === pos ? '' : buf.toString('utf8', pos, e);
  pos = e;
  return s;
}

/** The last namespace decoded (bytes and string): queries of one engine repeat it, so it is decoded once. */
let lastNsBytes = Buffer.alloc(0);
let lastNs = '';

function namespace(end: number): string {
  const e = lengthEnd(end);
  const n = e - pos;
  if (n === lastNsBytes.length && buf.compare(lastNsBytes, 0, n, pos, e) === 0) {
    pos = e;
    return lastNs;
  }
  lastNsBytes = Buffer.from(buf.subarray(pos, e));
  lastNs = n === 0 ? '' : buf.toString('utf8', pos, e);
  pos = e;
  return lastNs;
}

function hashList(end: number): HashList {
  const e = lengthEnd(end);
  let packed: Buffer = buf.subarray(pos, pos);
  let hashLen = 0;
  while (pos < e) {
    const tag = varint32();
    if (tag === 10) {
      const b = lengthEnd(e);
      packed = buf.subarray(pos, b);
      pos = b;
    } else if (tag === 16) hashLen = varint32();
    else skip(tag & 7, e);
  }
  return { packed, hashLen };
}

/** The QueryPrefix fields, numbered from `first` (1 in QueryPrefixRequest, 2 after the stream's id). */
function decodeQuery(input: Buffer, first: number): QueryPrefixStreamRequest {
  buf = input;
  pos = 0;
  const end = input.length;
  const req: QueryPrefixStreamRequest = { id: 0, namespace: '', hashes: undefined, excludeNodeId: '' };
  try {
    while (pos < end) {
      const tag = varint32();
      const field = tag >>> 3;
      const type = tag & 7;
      if (field === first && type === LEN) req.namespace = namespace(end);
      else if (field === first + 1 && type === LEN) req.hashes = hashList(end);
      else if (field === first + 2 && type === LEN) req.excludeNodeId = text(end);
      else if (field === 1 && first === 2 && type === VARINT) req.id = varint32();
      else if (field === 0) fail('field number 0');
      else skip(type, end);
    }
  } finally {
    buf = EMPTY; // the received buffer is not kept past the call
  }
  return req;
}
const EMPTY = Buffer.alloc(0);

// ---- writing: sizes first, then one buffer

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

function writeVarint(out: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** A uint64's varint bytes; values past 2^53 (epochs are random 64-bit numbers) are encoded once and kept. */
let lastBig = -1n;
let lastBigBytes = Buffer.alloc(0);

function bigBytes(v: bigint): Buffer {
  if (v !== lastBig) {
    const bytes: number[] = [];
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    bytes.push(Number(x));
    lastBig = v;
    lastBigBytes = Buffer.from(bytes);
  }
  return lastBigBytes;
}

function u64Size(v: bigint): number {
  return v >= 0n && v <= MAX_SAFE ? varintSize(Number(v)) : bigBytes(v).length;
}

function writeU64(out: Buffer, at: number, v: bigint): number {
  if (v >= 0n && v <= MAX_SAFE) return writeVarint(out, at, Number(v));
  const bytes = bigBytes(v);
  bytes.copy(out, at);
  return at + bytes.length;
}

function fieldSize(tagAndValue: number, body: number): number {
  return varintSize(tagAndValue) + varintSize(body) + body;
}

function nodeSize(n: NodePrefix): number {
  let size = 0;
  if (n.nodeId !== '') size += fieldSize(10, Buffer.byteLength(n.nodeId));
  if (n.addr !== '') size += fieldSize(18, Buffer.byteLength(n.addr));
  if (n.prefixLen !== 0) size += 1 + varintSize(n.prefixLen);
  if (n.transports.length > 0) {
    let packed = 0;
    for (const t of n.transports) packed += t < 0 ? 10 : varintSize(t);
    size += fieldSize(34, packed);
  }
  if (n.poolUsedBytes !== 0n) size += 1 + u64Size(n.poolUsedBytes);
  if (n.poolCapacityBytes !== 0n) size += 1 + u64Size(n.poolCapacityBytes);
  if (n.ssdBlocks !== 0) size += 1 + varintSize(n.ssdBlocks);
  return size;
}

function writeText(out: Buffer, at: number, tag: number, s: string): number {
  out[at++] = tag;
  const n = Buffer.byteLength(s);
  at = writeVarint(out, at, n);
  return at + out.write(s, at, n, 'utf8');
}

function writeNode(out: Buffer, at: number, n: NodePrefix, size: number): number {
  at = writeVarint(out, at, size);
  if (n.nodeId !== '') at = writeText(out, at, 10, n.nodeId);
  if (n.addr !== '') at = writeText(out, at, 18, n.addr);
  if (n.prefixLen !== 0) {
    out[at++] = 24;
    at = writeVarint(out, at, n.prefixLen);
  }
  if (n.transports.length > 0) {
    let packed = 0;
    for (const t of n.transports) packed += t < 0 ? 10 : varintSize(t);
    out[at++] = 34;
    at = writeVarint(out, at, packed);
    // enums are int32: a negative one is its 64-bit two's complement (10 bytes), as the generated encoder writes it
    for (const t of n.transports)
      at = t < 0 ? writeU64(out, at, BigInt.asUintN(64, BigInt(t))) : writeVarint(out, at, t);
  }
  if (n.poolUsedBytes !== 0n) {
    out[at++] = 40;
    at = writeU64(out, at, n.poolUsedBytes);
  }
  if (n.poolCapacityBytes !== 0n) {
    out[at++] = 48;
    at = writeU64(out, at, n.poolCapacityBytes);
  }
  if (n.ssdBlocks !== 0) {
    out[at++] = 56;
    at = writeVarint(out, at, n.ssdBlocks);
  }
  return at;
}

/** The QueryPrefix answer fields (epoch, nodes) numbered from `first`, after an id (stream) when first is 2. */
function encodeAnswer(id: number, epoch: bigint, nodes: NodePrefix[], error: ItemError | undefined, first: number) {
  const nodeTag = ((first + 1) << 3) | LEN;
  let size = 0;
  if (first === 2 && id !== 0) size += 1 + varintSize(id);
  if (epoch !== 0n) size += 1 + u64Size(epoch);
  // node sizes kept in a reused scratch array: an answer holds a handful of nodes
  if (sizes.length < nodes.length) sizes = new Int32Array(nodes.length * 2);
  for (let i = 0; i < nodes.length; i++) {
    const s = nodeSize(nodes[i]!);
    sizes[i] = s;
    size += 1 + varintSize(s) + s;
  }
  let errorSize = 0;
  if (error) {
    if (error.code !== '') errorSize += fieldSize(10, Buffer.byteLength(error.code));
    if (error.message !== '') errorSize += fieldSize(18, Buffer.byteLength(error.message));
    size += fieldSize(34, errorSize);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (first === 2 && id !== 0) {
    out[at++] = 8;
    at = writeVarint(out, at, id);
  }
  if (epoch !== 0n) {
    out[at++] = (first << 3) | VARINT;
    at = writeU64(out, at, epoch);
  }
  for (let i = 0; i < nodes.length; i++) {
    out[at++] = nodeTag;
    at = writeNode(out, at, nodes[i]!, sizes[i]!);
  }
  if (error) {
    out[at++] = 34;
    at = writeVarint(out, at, errorSize);
    if (error.code !== '') at = writeText(out, at, 10, error.code);
    if (error.message !== '') at = writeText(out, at, 18, error.message);
  }
  if (at !== size) throw new Error(`prefix-wire: wrote ${at} bytes of ${size}`);
  return out;
}
let sizes = new Int32Array(16);

function encodeRequest(id: number, req: QueryPrefixRequest, first: number): Buffer {
  const hashes = req.hashes;
  let hashesSize = 0;
  if (hashes) {
    if (hashes.packed.length > 0) hashesSize += fieldSize(10, hashes.packed.length);
    if (hashes.hashLen !== 0) hashesSize += 1 + varintSize(hashes.hashLen);
  }
  let size = first === 2 && id !== 0 ? 1 + varintSize(id) : 0;
  if (req.namespace !== '') size += fieldSize((first << 3) | LEN, Buffer.byteLength(req.namespace));
  if (hashes) size += fieldSize(((first + 1) << 3) | LEN, hashesSize);
  if (req.excludeNodeId !== '') size += fieldSize(((first + 2) << 3) | LEN, Buffer.byteLength(req.excludeNodeId));
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (first === 2 && id !== 0) {
    out[at++] = 8;
    at = writeVarint(out, at, id);
  }
  if (req.namespace !== '') at = writeText(out, at, (first << 3) | LEN, req.namespace);
  if (hashes) {
    out[at++] = ((first + 1) << 3) | LEN;
    at = writeVarint(out, at, hashesSize);
    if (hashes.packed.length > 0) {
      out[at++] = 10;
      at = writeVarint(out, at, hashes.packed.length);
      out.set(hashes.packed, at);
      at += hashes.packed.length;
    }
    if (hashes.hashLen !== 0) {
      out[at++] = 16;
      at = writeVarint(out, at, hashes.hashLen);
    }
  }
  if (req.excludeNodeId !== '') at = writeText(out, at, ((first + 2) << 3) | LEN, req.excludeNodeId);
  if (at !== size) throw new Error(`prefix-wire: wrote ${at} bytes of ${size}`);
  return out;
}

// ---- decoding answers (the client side)

function decodeNode(end: number): NodePrefix {
  const e = lengthEnd(end);
  const n: NodePrefix = {
    nodeId: '',
    addr: '',
    prefixLen: 0,
    transports: [],
    poolUsedBytes: 0n,
    poolCapacityBytes: 0n,
    ssdBlocks: 0,
  };
  while (pos < e) {
    const tag = varint32();
    if (tag === 10) n.nodeId = text(e);
    else if (tag === 18) n.addr = text(e);
    else if (tag === 24) n.prefixLen = varint32();
    else if (tag === 34) {
      const p = lengthEnd(e);
      while (pos < p) n.transports.push(varint32() | 0);
    } else if (tag === 32) n.transports.push(varint32() | 0);
    else if (tag === 40) n.poolUsedBytes = varint64();
    else if (tag === 48) n.poolCapacityBytes = varint64();
    else if (tag === 56) n.ssdBlocks = varint32();
    else skip(tag & 7, e);
  }
  return n;
}

function decodeAnswer(input: Buffer, first: number): QueryPrefixStreamResponse {
  buf = input;
  pos = 0;
  const end = input.length;
  const res: QueryPrefixStreamResponse = { id: 0, epoch: 0n, nodes: [], error: undefined };
  try {
    while (pos < end) {
      const tag = varint32();
      const field = tag >>> 3;
      const type = tag & 7;
      if (field === first && type === VARINT) res.epoch = varint64();
      else if (field === first + 1 && type === LEN) res.nodes.push(decodeNode(end));
      else if (field === 1 && first === 2 && type === VARINT) res.id = varint32();
      else if (field === 4 && first === 2 && type === LEN) {
        const e = lengthEnd(end);
        const error: ItemError = { code: '', message: '' };
        while (pos < e) {
          const t = varint32();
          if (t === 10) error.code = text(e);
          else if (t === 18) error.message = text(e);
          else skip(t & 7, e);
        }
        res.error = error;
      } else if (field === 0) fail('field number 0');
      else skip(type, end);
    }
  } finally {
    buf = EMPTY;
  }
  return res;
}

export const queryPrefixWire = {
  encodeRequest: (req: QueryPrefixRequest): Buffer => encodeRequest(0, req, 1),
  decodeRequest: (b: Buffer): QueryPrefixRequest => {
    const { namespace, hashes, excludeNodeId } = decodeQuery(b, 1);
    return { namespace, hashes, excludeNodeId };
  },
  encodeResponse: (res: QueryPrefixResponse): Buffer => encodeAnswer(0, res.epoch, res.nodes, undefined, 1),
  decodeResponse: (b: Buffer): QueryPrefixResponse => {
    const { epoch, nodes } = decodeAnswer(b, 1);
    return { epoch, nodes };
  },
};

export const queryPrefixStreamWire = {
  encodeRequest: (req: QueryPrefixStreamRequest): Buffer => encodeRequest(req.id, req, 2),
  decodeRequest: (b: Buffer): QueryPrefixStreamRequest => decodeQuery(b, 2),
  encodeResponse: (res: QueryPrefixStreamResponse): Buffer => encodeAnswer(res.id, res.epoch, res.nodes, res.error, 2),
  decodeResponse: (b: Buffer): QueryPrefixStreamResponse => decodeAnswer(b, 2),
};

/** The Metaserver service definition with the hand-written codecs for QueryPrefix and QueryPrefixStream. */
export const MetaserverWire: typeof MetaserverService = {
  ...MetaserverService,
  queryPrefix: {
    ...MetaserverService.queryPrefix,
    requestSerialize: queryPrefixWire.encodeRequest,
    requestDeserialize: queryPrefixWire.decodeRequest,
    responseSerialize: queryPrefixWire.encodeResponse,
    responseDeserialize: queryPrefixWire.decodeResponse,
  },
  queryPrefixStream: {
    ...MetaserverService.queryPrefixStream,
    requestSerialize: queryPrefixStreamWire.encodeRequest,
    requestDeserialize: queryPrefixStreamWire.decodeRequest,
    responseSerialize: queryPrefixStreamWire.encodeResponse,
    responseDeserialize: queryPrefixStreamWire.decodeResponse,
  },
};
