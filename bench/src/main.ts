// npm run bench -- <scenario> [--quick] | --list
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { capacityTable } from './capacity.js';
import {
  benchRun,
  createContext,
  formatTable,
  machineInfo,
  summaryTable,
  type ResultFile,
  type Scenario,
} from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const scenarioDir = join(here, 'scenarios');
// Compiled (dist/*.js) or, in development under tsx, the sources (*.ts).
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
// KVFABRIC_BENCH_RESULTS_DIR: where a scenario run inside the RDMA VM leaves its file for the host to pick up.
const resultsDir = process.env.KVFABRIC_BENCH_RESULTS_DIR ?? join(here, '../results');

function available(): string[] {
  return readdirSync(scenarioDir)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && !f.endsWith(`.test${ext}`))
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick') || process.env.KVFABRIC_BENCH_QUICK === '1';
  const names = argv.filter((a) => !a.startsWith('--'));
  if (argv.includes('--list') || names.length === 0) {
    console.log(`scenarios: ${available().join(', ')}\nusage: npm run bench -- <scenario>... [--quick]`);
    return names.length === 0 && !argv.includes('--list') ? 2 : 0;
  }
  for (const name of names) {
    if (!available().includes(name)) {
      console.error(`bench: unknown scenario "${name}" (have: ${available().join(', ')})`);
      return 2;
    }
  }
  mkdirSync(resultsDir, { recursive: true });
  const run = benchRun(names);
  for (const name of names) {
    const scenario = (await import(pathToFileURL(join(scenarioDir, `${name}${ext}`)).href)).default as Scenario;
    console.error(`\n▶ ${scenario.name}: ${scenario.description}${quick ? ' (quick)' : ''}`);
    const result = await scenario.run(createContext(quick));
    const file: ResultFile = {
      scenario: scenario.name,
      date: new Date().toISOString(),
      machine: machineInfo(quick),
      run,
      ...result,
    };
    const out = join(resultsDir, `${scenario.name}${quick ? '.quick' : ''}.json`);
    writeFileSync(out, JSON.stringify(file, null, 2) + '\n');
    console.log(`\n${scenario.name}`);
    if (result.table) console.log(formatTable(result.table) + '\n');
    if (Object.keys(result.ratios).length > 0) console.log(formatTable(summaryTable(result)));
    if (result.capacity?.length) console.log('\n' + formatTable(capacityTable(result.capacity)));
    for (const note of result.notes ?? []) console.log(`note: ${note}`);
    console.log(`\nwrote ${out}`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
