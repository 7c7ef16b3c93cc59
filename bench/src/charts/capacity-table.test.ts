import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuLedger, capacityRow, capacityRows, capacityTable, threadCpu, threadProbe } from '../capacity.js';
import { capacityBars, capacityMarkdown, type CapacityFile } from './capacity-table.js';

const GiB = 2 ** 30;

test('ms per GiB and GB/s one core carries follow from CPU seconds and bytes', () => {
  const r = capacityRow('p', 'kvfabric', 'event loop', 0.5, 4 * GiB);
  assert.equal(r.msPerGiB, 125);
  assert.equal(r.oneCoreGBps, (8 * GiB) / 1e9);
  // A party that spent no CPU sets no bound (null, which JSON keeps as it is).
  assert.equal(capacityRow('p', 'kvfabric', 'idle', 0, GiB).oneCoreGBps, null);
});

test('the printed table lists each side of a path with its total', () => {
  const rows = [
    ...capacityRows('save', 'kvfabric', { copy: 1, loop: 0.5 }, 2 * GiB),
    ...capacityRows('save', 'reference', { memcpy: 0.75 }, 2 * GiB),
  ];
  const t = capacityTable(rows);
  assert.deepEqual(
    t.rows.map((r) => [r[1], r[2], r[3]]),
    [
      ['kvfabric', 'copy', 500],
      ['kvfabric', 'loop', 250],
      ['kvfabric', 'all parties', 750],
      ['reference', 'memcpy', 375],
    ],
  );
});

const file: CapacityFile = {
  scenario: 'node-local',
  date: '2026-12-06T00:00:00.000Z',
  capacity: [
    ...capacityRows('save 8 engines', 'kvfabric', { copy: 1, 'node event loop': 3 }, 8 * GiB),
    ...capacityRows('save 8 engines', 'reference', { 'memcpy threads': 2 }, 8 * GiB),
  ],
};

test("the README table lists each side's parties, busiest first, and the chart compares all parties", () => {
  const md = capacityMarkdown([file, { scenario: 'cli', date: '2026-12-06T00:00:00.000Z' }]);
  const lines = md.split('\n');
  assert.equal(
    lines[2],
    '| save 8 engines (`node-local`) | 500 | node event loop: 375 (2.86); copy: 125 (8.59) | 250 | memcpy threads: 250 (4.29) |',
  );
  assert.equal(lines.length, 6, 'header, rule, one row, blank, source line, final newline');
  assert.match(lines[4]!, /From the result files of 2026-12-06/);
  assert.deepEqual(capacityBars([file]), [{ label: 'save 8 engines', kvfabric: 500, reference: 250 }]);
  assert.match(capacityMarkdown([]), /^No result file has capacity figures yet/);
});

test('thread CPU of this process is read per group and grows with work', () => {
  const before = threadCpu(process.pid);
  let x = 0;
  for (let i = 0; i < 2e7; i++) x += i % 7;
  const after = threadCpu(process.pid);
  assert.ok(x > 0);
  assert.ok(after.main > before.main, `main thread CPU ${before.main} -> ${after.main}`);
  assert.deepEqual(threadCpu(-1), { main: 0, copy: 0, transport: 0, other: 0 });
});

test('a ledger counts only counted windows, reads probes in order before and in reverse after', async () => {
  const reads: string[] = [];
  let clock = 0;
  const probe = (name: string) => () => {
    reads.push(name);
    return { [name]: ++clock };
  };
  const ledger = new CpuLedger([probe('other process'), probe('this process')]);
  assert.deepEqual(ledger.seconds, { 'other process': 0, 'this process': 0 });
  reads.length = 0;
  clock = 0;
  await ledger.window(true, async () => {
    clock += 10;
  });
  // before: other=1, this=2; work: +10; after: this=13, other=14
  assert.deepEqual(reads, ['other process', 'this process', 'this process', 'other process']);
  assert.deepEqual(ledger.seconds, { 'other process': 13, 'this process': 11 });
  await ledger.window(false, async () => undefined);
  ledger.add('iperf3 sender', 0.5);
  assert.deepEqual(ledger.seconds, { 'other process': 13, 'this process': 11, 'iperf3 sender': 0.5 });
});

test('a thread probe sums the groups given one name and leaves out the rest', () => {
  const all = threadProbe(process.pid, { main: 'js', copy: 'rest', other: 'rest' })();
  const mainOnly = threadProbe(process.pid, { main: 'js' })();
  assert.deepEqual(Object.keys(all).sort(), ['js', 'rest']);
  assert.deepEqual(Object.keys(mainOnly), ['js']);
  assert.ok(all.js! > 0 && all.rest! >= 0);
});
