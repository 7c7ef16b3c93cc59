import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRecord, encodeRecords, type SsdPut } from './journal-codec.js';
import { SsdJournal } from './ssd-journal.js';

const layout = { tpSize: 1, replicated: true, segments: 2, segmentBytes: 8192 };
const put = (i: number): SsdPut => ({
  kind: 'put',
  file: 0,
  offset: i * 16384,
  namespace: 'ns',
  layout,
  hash: Buffer.from([i]),
  checksums: new Uint32Array([i, 0]),
});

test('a journal survives a reopen, drops a torn tail, and compaction leaves exactly the live records', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-journal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'kvfabric-ssd.journal');
  const first = await SsdJournal.open(path, dir, 0);
  assert.deepEqual([first.replay.live, first.replay.dropped], [[], 0]);
  await first.journal.append(encodeRecords([put(1), put(2), put(3)]));
  await first.journal.append(encodeRecord({ kind: 'drop', file: 0, offset: put(2).offset }));
  await first.journal.close();
  appendFileSync(path, encodeRecord(put(4)).subarray(0, 20)); // a crash in the middle of an append

  const second = await SsdJournal.open(path, dir, 0);
  assert.deepEqual(
    second.replay.live.map((p) => p.hash[0]),
    [1, 3],
  );
  assert.equal(second.replay.dropped, 1);
  const live = encodeRecord(put(1)).length + encodeRecord(put(3)).length;
  assert.equal(statSync(path).size, live, 'rewritten with what survived: the torn tail is gone');
  await second.journal.append(encodeRecord(put(5)));
  await second.journal.compact(encodeRecord(put(5)));
  assert.equal(statSync(path).size, encodeRecord(put(5)).length);
  await second.journal.append(encodeRecord(put(6)));
  await second.journal.close();

  const third = await SsdJournal.open(path, dir, 7); // the drive's index comes from --ssd-path's order now
  assert.deepEqual(
    third.replay.live.map((p) => [p.hash[0], p.file]),
    [
      [5, 7],
      [6, 7],
    ],
  );
  await third.journal.close();
});
