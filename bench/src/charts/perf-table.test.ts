import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { capacityRows } from '../capacity.js';
import { perfRows } from './perf-rows.js';
import { sourcesSentence } from './perf-sources.js';
import {
  MISSING,
  atLeast,
  atMost,
  cell,
  cpu,
  m,
  perfTable,
  quotient,
  ratio,
  ref,
  span,
  type PerfFile,
  type PerfRow,
} from './perf-table.js';

const GiB = 2 ** 30;
const machine = {
  cpus: 2,
  cpuModel: 'AMD EPYC',
  memoryBytes: 24 * GiB,
  node: 'v20.20.2',
  platform: 'linux-x64',
  quick: false,
};

const file = (scenario: string, date: string, f: Partial<PerfFile> = {}): PerfFile => ({
  scenario,
  date,
  machine,
  metrics: {},
  reference: {},
  ratios: {},
  ...f,
});

const GOAL = atLeast(0.9);
const saveRow: PerfRow = {
  path: 'save, 256 KiB / 2 MiB',
  scenario: 'node-local',
  kvfabric: cell`${m('save_256', { digits: 1 })} / ${m('save_2m', { digits: 1 })} GB/s`,
  reference: cell`memcpy: ${ref('save_256', { digits: 1 })} / ${ref('save_2m', { digits: 1 })} GB/s`,
  ratio: cell`${ratio('save_256', { goal: GOAL })} / ${ratio('save_2m', { goal: GOAL })}`,
  target: [GOAL],
};
const latencyRow: PerfRow = {
  path: 'query',
  scenario: 'node-local',
  kvfabric: cell`p50 ${m('p50_us', { digits: 0 })} µs, p99 ${m('p99_us', { digits: 0, goal: atMost(300, ' µs', 'p99 ') })} µs`,
  reference: () => '',
  ratio: () => '',
  target: [atMost(300, ' µs', 'p99 '), 'and words'],
};

const nodeLocal = file('node-local', '2026-12-06T06:31:10.820Z', {
  metrics: { save_256: 7.648, save_2m: 11.31, p50_us: 248.7, p99_us: 1420.7 },
  reference: { save_256: 15.24, save_2m: 12.0 },
  ratios: { save_256: 0.5017, save_2m: 0.9 },
});

test('each cell prints the numbers of its file; a ratio or value on the wrong side of its target is bold', () => {
  const lines = perfTable([saveRow, latencyRow], new Map([['node-local', nodeLocal]]));
  assert.deepEqual(lines, [
    '| path (DESIGN §8) | kvfabric | reference | ratio | target |',
    '|---|---|---|---|---|',
    // 0.9 meets "≥ 0.9" (not bold), 0.5017 misses it.
    '| save, 256 KiB / 2 MiB (`node-local`) | 7.6 / 11.3 GB/s | memcpy: 15.2 / 12.0 GB/s | **0.50** / 0.90 | ≥ 0.9 |',
    '| query (`node-local`) | p50 249 µs, p99 **1,421** µs |  |  | p99 ≤ 300 µs; and words |',
  ]);
});

test('a number the file lacks prints "–", a cell with none of its numbers and a row without a file print "–"', () => {
  const partial = file('node-local', nodeLocal.date, {
    metrics: { save_256: 7.648 },
    reference: {},
    ratios: { save_256: 0.95, save_2m: Number.NaN },
  });
  const [row] = perfTable([saveRow], new Map([['node-local', partial]])).slice(2);
  assert.equal(
    row,
    `| save, 256 KiB / 2 MiB (\`node-local\`) | 7.6 / ${MISSING} GB/s | ${MISSING} | 0.95 / ${MISSING} | ≥ 0.9 |`,
  );
  const [none] = perfTable([saveRow], new Map()).slice(2);
  assert.equal(none, `| save, 256 KiB / 2 MiB (\`node-local\`) | ${MISSING} | ${MISSING} | ${MISSING} | ≥ 0.9 |`);
  // Words alone are not numbers: a cell of words prints as written, with or without a file.
  assert.equal(cell`memcpy, same threads`(undefined), 'memcpy, same threads');
  assert.equal(cell`${m('x')} GB/s (${'memcpy'})`(undefined), MISSING);
});

test('ranges, capacity figures and quotients come from the file too', () => {
  const goal = atMost(3, ' ms');
  const f = file('native-copy', nodeLocal.date, {
    metrics: { a: 12.13, b: 15.03, c: 13.0, cpu_big: 80, cpu_small: 40 },
    ratios: { a: 0.93, b: 0.955, c: 0.98, d: 0.98 },
    capacity: [
      ...capacityRows(
        'save + load, 256KiB blocks, 1 engine',
        'kvfabric',
        { 'node event loop': 0.5, 'engine client (SDK, ring)': 0.002 },
        GiB,
      ),
      ...capacityRows('save + load, 256KiB blocks, 1 engine', 'reference', { 'memcpy threads': 0.15 }, GiB),
    ],
  });
  const c = cell`${span(m('a', { digits: 1 }), m('b', { digits: 1 }), m('c', { digits: 1 }), m('gone'))} GB/s; ${span(ratio('a', { goal: atLeast(0.9) }), ratio('b'))} / ${span(ratio('c'), ratio('d'))} / ${span(ratio('x'), ratio('y'))}`;
  assert.equal(c(f), `12.1–15.0 GB/s; 0.93–0.96 / 0.98 / ${MISSING}`);
  const below = file('native-copy', nodeLocal.date, { ratios: { a: 0.85, b: 0.95 } });
  assert.equal(
    cell`${span(ratio('a', { goal: atLeast(0.9) }), ratio('b', { goal: atLeast(0.9) }))}`(below),
    '**0.85–0.95**',
  );
  const path = 'save + load, 256KiB blocks, 1 engine';
  assert.equal(
    cell`loop ${cpu(path, 'kvfabric', 'node event loop', { digits: 1, goal })} ms, client ${cpu(path, 'kvfabric', 'engine client', { digits: 1, goal })} ms, memcpy ${cpu(path, 'reference', 'memcpy')} ms, ${cpu(path, 'reference', 'copy threads')}`(
      f,
    ),
    `loop **500.0** ms, client 2.0 ms, memcpy 150 ms, ${MISSING}`,
  );
  assert.equal(
    cell`${quotient(m('cpu_big'), m('cpu_small'))} / ${quotient(m('cpu_big'), m('nothing'))}`(f),
    `2.00 / ${MISSING}`,
  );
  assert.equal(cell`${m('cpu_big', { scale: 1e-3, digits: 3 })} s`(f), '0.080 s');
});

test('the sentence groups files by the run that wrote them, with its command and load, and names the machine once', () => {
  const run = {
    started: '2026-12-06T20:00:05.000Z',
    scenarios: ['node-local', 'pull', 'native-copy'],
    loadAverage: 1.93,
  };
  const files = new Map<string, PerfFile>([
    ['pull', file('pull', '2026-12-06T20:40:00.000Z', { run })],
    ['node-local', file('node-local', '2026-12-06T20:20:00.000Z', { run })],
    // Older files without a run: those written within minutes of each other are listed together.
    ['metaserver', file('metaserver', '2026-11-21T07:01:49.695Z')],
    ['failover', file('failover', '2026-11-21T07:02:07.116Z')],
    ['cli', file('cli', '2026-12-06T02:40:27.954Z')],
  ]);
  assert.equal(
    sourcesSentence(['node-local', 'pull', 'node-local', 'cli', 'metaserver', 'failover', 'tcp-read'], files),
    'Result files (`bench/results/<scenario>.json`): `node-local`, `pull`: one run ' +
      '(`npm run bench -- node-local pull native-copy`) started 2026-12-06 20:00 UTC, load average 1.93 at its start; ' +
      '`cli`: written 2026-12-06 02:40 UTC; `metaserver`, `failover`: written 2026-11-21 07:01–07:02 UTC; ' +
      '`tcp-read`: no result file. Machine: 2 vCPUs (AMD EPYC), 24 GiB, Node.js v20.20.2.',
  );
  const vm = file('rdma', '2026-12-02T02:31:19.662Z', { machine: { ...machine, cpus: 4, quick: true } });
  assert.equal(
    sourcesSentence(
      ['cli', 'rdma'],
      new Map([
        ['cli', files.get('cli')!],
        ['rdma', vm],
      ]),
    ),
    'Result files (`bench/results/<scenario>.json`): `cli`: written 2026-12-06 02:40 UTC on 2 vCPUs (AMD EPYC), ' +
      '24 GiB, Node.js v20.20.2; `rdma`: written 2026-12-02 02:31 UTC on 4 vCPUs (AMD EPYC), 24 GiB, Node.js ' +
      'v20.20.2, quick sizes.',
  );
});

test("the README's rows find every number they print in the committed result files", () => {
  const results = fileURLToPath(new URL('../../results', import.meta.url));
  const files = new Map<string, PerfFile>();
  for (const s of new Set(perfRows.map((r) => r.scenario))) {
    const path = `${results}/${s}.json`;
    assert.ok(existsSync(path), `bench/results/${s}.json`);
    files.set(s, JSON.parse(readFileSync(path, 'utf8')) as PerfFile);
  }
  // "–" also joins the ends of a range (12.0–15.0); a missing number stands alone.
  const missing = new RegExp(`(^|[\\s(/])${MISSING}($|[\\s)/,;])`);
  assert.match(`| ${MISSING} |`, missing);
  assert.match(`1.2 / ${MISSING} GB/s`, missing);
  assert.doesNotMatch('12.0–15.0 GB/s', missing);
  for (const line of perfTable(perfRows, files).slice(2))
    assert.doesNotMatch(line, missing, `a number of this row is not in its result file: ${line}`);
});
