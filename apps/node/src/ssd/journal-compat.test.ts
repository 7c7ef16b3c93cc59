// A journal written by the catalog of one object per block (before the catalog became arrays indexed by native ids)
// replays into the same catalog: the same entries in the same LRU order with the same extents, sums and geometry,
// the same records dropped, and a compaction that writes the same bytes. The journal and what that catalog made of
// it were recorded from the code of commit 0797f19 (puts, drops, a block written again elsewhere, a dropped extent
// reused, a put past the drive, two namespaces, two layouts, two hash lengths).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SsdCatalog } from './ssd-catalog.js';
import { openDrive } from './ssd-drives.js';

const narrow = { tpSize: 1, replicated: false, segments: 2, segmentBytes: 8192 };
const tp2 = { tpSize: 2, replicated: false, segments: 1, segmentBytes: 4096 };

const written =
  'S1ZKMQE+AAAAAAAAAAAAAAAAAAEAAAIAACAAAAFhIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB6AMAAOkDAAC24OU8' +
  'S1ZKMQFJAAAAAAAAAAAAAGAwQQIAAAEAABAAAARiL8O8IAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIQB8AAEEfAABC' +
  'HwAAQx8AABFCgbBLVkoxAT4AAAAAAAAAAAAAANBAAQAAAgAAIAAAAWEgAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgLQ' +
  'BwAA0QcAAD1rmwdLVkoxAUkAAAAAAAAAAAAAADBBAgAAAQAAEAAABGIvw7wgAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMD' +
  'AwO4CwAAuQsAALoLAAC7CwAAgxy1JEtWSjEBLgAAAAAAAAAAAAAA4EABAAACAAAgAAABYRAEBAQEBAQEBAQEBAQEBAQEoA8AAKEP' +
  'AABlPn6mS1ZKMQIKAAAAAAAAAAAAAADQQGLshlpLVkoxAT4AAAAAAAAAAAAAAOhAAQAAAgAAIAAAAWEgAQEBAQEBAQEBAQEBAQEB' +
  'AQEBAQEBAQEBAQEBAQEBAQHoAwAA6QMAANVTbNJLVkoxAT4AAAAAAAAAAAAAANBAAQAAAgAAIAAAAWEgBQUFBQUFBQUFBQUFBQUF' +
  'BQUFBQUFBQUFBQUFBQUFBQWIEwAAiRMAAEDIRV5LVkoxAgoAAAAAAAAAAAAAYDBBOOQoO0tWSjEBSQAAAAAAAAAAAAAgMEECAAAB' +
  'AAAQAAAEYi/DvCAJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCSgjAAApIwAAKiMAACsjAADQbYrAS1ZKMQE+AAAAAAAA' +
  'AAAAAADQQQEAAAIAACAAAAFhIAYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGcBcAAHEXAADICUPaS1ZKMQFGAAAAAAAA' +
  'AAAAAEAwQQIAAAEAABAAAAFhIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHWBsAAFkbAABaGwAAWxsAAIy+Nb0=';

const compacted =
  'S1ZKMQFJAAAAAAAAAAAAAAAwQQIAAAEAABAAAARiL8O8IAMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDuAsAALkLAAC6' +
  'CwAAuwsAAIMctSRLVkoxAS4AAAAAAAAAAAAAAOBAAQAAAgAAIAAAAWEQBAQEBAQEBAQEBAQEBAQEBKAPAAChDwAAZT5+pktWSjEB' +
  'PgAAAAAAAAAAAAAA6EABAAACAAAgAAABYSABAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAegDAADpAwAA1VNs0ktWSjEB' +
  'PgAAAAAAAAAAAAAA0EABAAACAAAgAAABYSAFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBYgTAACJEwAAQMhFXktWSjEB' +
  'SQAAAAAAAAAAAAAgMEECAAABAAAQAAAEYi/DvCAJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCSgjAAApIwAAKiMAACsj' +
  'AADQbYrAS1ZKMQFGAAAAAAAAAAAAAEAwQQIAAAEAABAAAAFhIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHWBsAAFkb' +
  'AABaGwAAWxsAAIy+Nb0=';

const before = {
  recovered: 6,
  dropped: 1,
  usedBytes: 73728,
  entries: [
    {
      namespace: 'b/ü',
      layout: tp2,
      hash: '0303030303030303030303030303030303030303030303030303030303030303',
      offset: 1048576,
      checksums: [3000, 3001, 3002, 3003],
    },
    {
      namespace: 'a',
      layout: narrow,
      hash: '04040404040404040404040404040404',
      offset: 32768,
      checksums: [4000, 4001],
    },
    {
      namespace: 'a',
      layout: narrow,
      hash: '0101010101010101010101010101010101010101010101010101010101010101',
      offset: 49152,
      checksums: [1000, 1001],
    },
    {
      namespace: 'a',
      layout: narrow,
      hash: '0505050505050505050505050505050505050505050505050505050505050505',
      offset: 16384,
      checksums: [5000, 5001],
    },
    {
      namespace: 'b/ü',
      layout: tp2,
      hash: '0909090909090909090909090909090909090909090909090909090909090909',
      offset: 1056768,
      checksums: [9000, 9001, 9002, 9003],
    },
    {
      namespace: 'a',
      layout: tp2,
      hash: '0707070707070707070707070707070707070707070707070707070707070707',
      offset: 1064960,
      checksums: [7000, 7001, 7002, 7003],
    },
  ],
};

test('a journal written before the catalog became arrays replays into the same catalog and compacts the same', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-journal-compat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'kvfabric-ssd.journal');
  writeFileSync(path, Buffer.from(written, 'base64'));
  const catalog = new SsdCatalog(1);
  const { drive, replay } = await openDrive({ dir, index: 0, capacityBytes: 4 << 20, wipe: false }, catalog);
  t.after(async () => {
    drive.file.close();
    await drive.journal.close();
  });
  assert.deepEqual(
    [replay.recovered, replay.dropped, catalog.usedBytes(0)],
    [before.recovered, before.dropped, before.usedBytes],
  );
  const entries = [...catalog.ids(0)].map((id) => ({
    namespace: catalog.kindOfId(id).namespace,
    layout: catalog.kindOfId(id).layout,
    hash: catalog.hashOf(id).toString('hex'),
    offset: catalog.offsetOf(id),
    checksums: [...catalog.checksumsOf(id)],
  }));
  assert.deepEqual(entries, before.entries);
  assert.deepEqual(readFileSync(path), Buffer.from(compacted, 'base64'), 'the compaction at open wrote the same bytes');
});
