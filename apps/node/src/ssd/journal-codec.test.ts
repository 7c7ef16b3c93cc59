import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  decodeRecords,
  encodePuts,
  encodeRecord,
  encodeRecords,
  type SsdPut,
  type SsdRecord,
} from './journal-codec.js';
import { JournalReplay } from './journal-replay.js';

const layout = { tpSize: 2, replicated: false, segments: 4, segmentBytes: 16384 };
function put(i: number, offset = i * 131072): SsdPut {
  const checksums = new Uint32Array(4).map((_, k) => i * 10 + k);
  return { kind: 'put', file: 0, offset, namespace: 'model-a/tp2', layout, hash: Buffer.from([i, 1, 2, 3]), checksums };
}
function decodeAll(buf: Buffer, chunk = buf.length): { records: SsdRecord[]; dropped: number } {
  const records: SsdRecord[] = [];
  let dropped = 0;
  let carry = Buffer.alloc(0);
  for (let at = 0; at < buf.length || carry.length > 0; at += chunk) {
    const final = at + chunk >= buf.length;
    const b = Buffer.concat([carry, buf.subarray(at, at + chunk)]);
    const r = decodeRecords(b, (x) => records.push(x), final);
    dropped += r.dropped;
    carry = b.subarray(r.consumed);
    if (final) break;
  }
  return { records, dropped };
}

test('records round-trip, also when the journal is read in small chunks', () => {
  const recs: SsdRecord[] = [put(1), { kind: 'drop', file: 3, offset: 2 ** 40 }, put(2), put(3)];
  const buf = Buffer.concat(recs.map(encodeRecord));
  for (const chunk of [buf.length, 7, 50]) {
    const { records, dropped } = decodeAll(buf, chunk);
    assert.equal(dropped, 0);
    assert.deepEqual(records, recs);
  }
});

test('a batch encodes into one buffer, byte for byte the records one by one (a multi-byte namespace too)', () => {
  const recs: SsdRecord[] = [put(1), { kind: 'drop', file: 1, offset: 8192 }, { ...put(2), namespace: 'modèle/ü' }];
  const batch = encodeRecords(recs);
  assert.deepEqual(batch, Buffer.concat(recs.map(encodeRecord)));
  assert.deepEqual(decodeAll(batch).records, recs);
  assert.equal(encodeRecords([]).length, 0);
});

test('a run of puts encoded from arrays is byte for byte the same puts encoded one by one', () => {
  const wide = { tpSize: 4, replicated: false, segments: 2, segmentBytes: 8192 };
  const hashes = Buffer.from(randomBytes(3 * 20));
  const offsets = Float64Array.from([0, 2 ** 33, 12288]);
  const sums = Uint32Array.from({ length: 3 * 8 }, (_, i) => (i * 2654435761) >>> 0);
  const puts: SsdPut[] = [0, 1, 2].map((k) => ({
    kind: 'put',
    file: 3,
    offset: offsets[k]!,
    namespace: 'modèle/tp4',
    layout: wide,
    hash: hashes.subarray(20 * k, 20 * (k + 1)),
    checksums: sums.subarray(8 * k, 8 * (k + 1)),
  }));
  const run = encodePuts(3, 'modèle/tp4', wide, hashes, 20, 3, offsets, sums);
  assert.deepEqual(run, encodeRecords(puts));
  assert.equal(encodePuts(3, 'x', wide, hashes, 20, 0, offsets, sums).length, 0);
});

test('a torn last record is dropped and counted; everything before it survives', () => {
  const buf = Buffer.concat([put(1), put(2), put(3)].map(encodeRecord));
  for (let cut = 1; cut < encodeRecord(put(3)).length; cut += 5) {
    const { records, dropped } = decodeAll(buf.subarray(0, buf.length - cut));
    assert.deepEqual(records, [put(1), put(2)], `cut ${cut}`);
    assert.equal(dropped, 1, `cut ${cut}`);
  }
});

test('a record with flipped bits is dropped; decoding resumes at the next record', () => {
  const parts = [put(1), put(2), put(3)].map(encodeRecord);
  for (const at of [0, 4, 6, 12, 30, parts[1]!.length - 1]) {
    const bad = Buffer.from(parts[1]!);
    bad[at] = bad[at]! ^ 0x40;
    const { records, dropped } = decodeAll(Buffer.concat([parts[0]!, bad, parts[2]!]));
    assert.deepEqual(records, [put(1), put(3)], `flip at ${at}`);
    assert.equal(dropped, 1, `flip at ${at}`);
  }
  const { records, dropped } = decodeAll(Buffer.concat([parts[0]!, randomBytes(300), parts[2]!]));
  assert.deepEqual(records, [put(1), put(3)]);
  assert.ok(dropped >= 1);
});

test('replay keeps the last put per extent and per block, minus drops', () => {
  const r = new JournalReplay();
  r.apply(put(1, 0));
  r.apply(put(2, 131072));
  r.apply({ kind: 'drop', file: 0, offset: 0 }); // block 1's extent freed
  r.apply(put(3, 0)); // and reused by block 3
  r.apply(put(2, 262144)); // block 2 written again elsewhere
  r.apply(put(4, 393216));
  r.apply({ kind: 'drop', file: 0, offset: 393216 });
  assert.deepEqual(
    r.live().map((p) => [p.hash[0], p.offset]),
    [
      [3, 0],
      [2, 262144],
    ],
  );
  assert.equal(r.records, 7);
});
