// Pulls' single-flight claims in native memory (src/flight_table.h): a run is claimed up to the first block the
// index holds or another pull claimed, per namespace; ending a run reports only the claims someone waited on, and
// ends each claim once; hostile input is refused naming the field. Run under ASan/UBSan by test/asan.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockClass, createBlockIndex } from '../lib/block-index.js';
import { createFlightTable } from '../lib/flight-table.js';

const LEN = 8;
const hashes = (...ids: number[]) => Buffer.concat(ids.map((i) => Buffer.alloc(LEN, i + 1)));

test('a run is claimed up to a block the index holds or another pull claimed; ends report the waited ones', () => {
  const index = createBlockIndex(16);
  const flights = createFlightTable();
  const packed = hashes(0, 1, 2, 3, 4, 5);
  // block 4 exists locally (a partial save counts: it is not ours to pull)
  index.slotForShard(7, packed, 4 * LEN, LEN, 1, 0, 4096, BlockClass.Local);
  assert.equal(flights.claimRun(index, 7, packed, LEN, 1, 5), 3, 'blocks 1..3, then block 4 is in the index');
  assert.equal(flights.size(), 3);
  assert.equal(flights.claimRun(index, 7, packed, LEN, 0, 6), 1, 'block 0, then block 1 is claimed');
  assert.equal(flights.claimRun(index, 8, packed, LEN, 1, 3), 3, 'another namespace: its own claims');
  assert.equal(flights.size(), 7);

  assert.equal(flights.wait(7, packed, LEN, 2), true);
  assert.equal(flights.wait(7, packed, LEN, 5), false, 'not claimed');
  assert.deepEqual([...flights.endRun(7, packed, LEN, 1, 3)], [2], 'only the waited claim is reported');
  assert.equal(flights.size(), 4);
  assert.deepEqual([...flights.endRun(7, packed, LEN, 0, 6)], [], 'ended claims are skipped; block 0 ended unwaited');
  assert.equal(flights.wait(7, packed, LEN, 2), false);
  assert.equal(flights.size(), 3);
  // claimable again once ended; a claim made anew is not waited on
  assert.equal(flights.claimRun(index, 7, packed, LEN, 2, 2), 2);
  assert.deepEqual([...flights.endRun(7, packed, LEN, 2, 2)], []);
  assert.deepEqual([...flights.endRun(8, packed, LEN, 1, 3)], []);
  assert.equal(flights.size(), 0);
});

test('many claims grow the table; hostile input is refused naming the field and changes nothing', () => {
  const index = createBlockIndex(16);
  const flights = createFlightTable();
  const n = 5000;
  const packed = Buffer.alloc(n * 32);
  for (let i = 0; i < n; i++) packed.writeUInt32LE(i, i * 32);
  assert.equal(flights.claimRun(index, 0, packed, 32, 0, n), n);
  for (let i = 0; i < n; i += 997) assert.equal(flights.wait(0, packed, 32, i), true);
  assert.deepEqual(
    [...flights.endRun(0, packed, 32, 0, n)],
    Array.from({ length: Math.ceil(n / 997) }, (_, k) => k * 997),
  );
  const refused = (fn: () => unknown, field: RegExp) =>
    assert.throws(fn, (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && field.test(e.message));
  refused(() => flights.claimRun(index, 0, packed, 32, n - 1, 2), /^count: hashes 4999\.\.5001 of 5000/);
  refused(() => flights.claimRun({} as never, 0, packed, 32, 0, 1), /^index/);
  refused(() => flights.wait(0, packed, 65, 0), /^hashLen/);
  refused(() => flights.endRun(0, 'x' as never, 32, 0, 1), /^packed/);
  assert.equal(flights.size(), 0);
});
