// cli: cold start of the operator CLI, each run a fresh process, as an operator types it:
//   `kvfabric --help`                                 (no network: module loading and argument parsing)
//   `kvfabric nodes --metaserver-addr H:P`            (a live metaserver with two registered nodes; one RPC, a table)
// against, in the same run, the CLIs operators already use against a local server:
//   `redis-cli -p P PING`                             (redis-server from Debian)
//   `etcdctl --endpoints H:P endpoint health`         (etcd + etcdctl from Debian)
//   `node -e 0`                                       (the floor for any Node.js program)
// Each command runs `rounds` times, alternating; wall time is measured from fork to exit, CPU (user + system) from
// the child's rusage. The goal for `kvfabric nodes` is under 150 ms on the development machine.
import { spawn } from 'node:child_process';
import { BIN, startEtcd, startMetaserver, startNode, type NodeHandle } from '@kvfabric/testkit';
import { median, percentile, type BenchContext, type Scenario, type ScenarioResult } from '../harness.js';
import { startRedis } from '../peers/redis.js';

interface Sample {
  wallMs: number;
  cpuMs: number;
}

interface Party {
  name: string;
  argv: string[];
  samples: Sample[];
}

// Runs argv in a forked child and prints wall and CPU microseconds: CPU (user + system) from wait4's rusage, which
// Linux keeps to the microsecond (/usr/bin/time prints it rounded to 10 ms, and a 10 ms CLI read as 0).
const RUSAGE_WRAPPER = `
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0); os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
print(f"rusage {os.waitstatus_to_exitcode(status)} {wall * 1e6:.0f} {(ru.ru_utime + ru.ru_stime) * 1e6:.0f}", file=sys.stderr)
`;

/** Runs argv (stdout to /dev/null); resolves with wall and CPU milliseconds, rejects on a non-zero exit. */
function timed(argv: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', RUSAGE_WRAPPER, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', () => {
      const m = /rusage (-?\d+) (\d+) (\d+)\s*$/.exec(stderr);
      if (!m || m[1] !== '0') return reject(new Error(`cli bench: ${argv.join(' ')} failed: ${stderr.trim()}`));
      resolve({ wallMs: Number(m[2]) / 1000, cpuMs: Number(m[3]) / 1000 });
    });
  });
}

async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const rounds = ctx.quick ? 5 : 30;
  await using metaserver = await startMetaserver({ logLevel: 'warn' });
  const nodes: NodeHandle[] = [];
  try {
    for (let i = 0; i < 2; i++)
      nodes.push(await startNode({ metaserverAddr: metaserver.addr, poolSize: '64mib', logLevel: 'warn' }));
    await using redis = await startRedis();
    await using etcd = await startEtcd();
    const node = process.execPath;
    const parties: Party[] = [
      { name: 'kvfabric --help', argv: [node, BIN.cli, '--help'], samples: [] },
      { name: 'kvfabric nodes', argv: [node, BIN.cli, 'nodes', '--metaserver-addr', metaserver.addr], samples: [] },
      { name: 'redis-cli PING', argv: ['redis-cli', '-h', redis.host, '-p', String(redis.port), 'PING'], samples: [] },
      {
        name: 'etcdctl endpoint health',
        argv: ['etcdctl', '--endpoints', etcd.endpoint, 'endpoint', 'health'],
        samples: [],
      },
      { name: 'node -e 0', argv: [node, '-e', '0'], samples: [] },
    ];
    for (const p of parties) await timed(p.argv); // warm the page cache once; not counted
    const bar = ctx.progress('cold starts', rounds * parties.length);
    for (let r = 0; r < rounds; r++) {
      for (const p of parties) {
        p.samples.push(await timed(p.argv));
        bar.tick();
      }
    }
    bar.done();

    const med = (p: Party, k: keyof Sample) => median(p.samples.map((s) => s[k]));
    const p90 = (p: Party) =>
      percentile(
        p.samples.map((s) => s.wallMs).sort((a, b) => a - b),
        90,
      );
    const by = (name: string) => parties.find((p) => p.name === name)!;
    const [help, nodesCmd, redisCli, etcdctl, floor] = parties as [Party, Party, Party, Party, Party];
    const ms = (x: number) => Number(x.toFixed(1));
    return {
      metrics: {
        kvfabric_help_ms: ms(med(help, 'wallMs')),
        kvfabric_nodes_ms: ms(med(nodesCmd, 'wallMs')),
        kvfabric_nodes_vs_etcdctl_ms: ms(med(nodesCmd, 'wallMs')),
        kvfabric_nodes_cpu_ms: ms(med(nodesCmd, 'cpuMs')),
        node_floor_ms: ms(med(floor, 'wallMs')),
      },
      reference: {
        kvfabric_nodes_ms: ms(med(redisCli, 'wallMs')),
        kvfabric_nodes_vs_etcdctl_ms: ms(med(etcdctl, 'wallMs')),
        kvfabric_help_ms: ms(med(floor, 'wallMs')),
        kvfabric_nodes_cpu_ms: ms(med(by('etcdctl endpoint health'), 'cpuMs')),
      },
      ratios: {
        kvfabric_nodes_ms: med(nodesCmd, 'wallMs') / med(redisCli, 'wallMs'),
        kvfabric_nodes_vs_etcdctl_ms: med(nodesCmd, 'wallMs') / med(etcdctl, 'wallMs'),
        kvfabric_help_ms: med(help, 'wallMs') / med(floor, 'wallMs'),
        kvfabric_nodes_cpu_ms: med(nodesCmd, 'cpuMs') / med(etcdctl, 'cpuMs'),
      },
      table: {
        columns: ['command', 'median ms', 'p90 ms', 'cpu ms (median)', 'runs'],
        rows: parties.map((p) => [p.name, ms(med(p, 'wallMs')), ms(p90(p)), ms(med(p, 'cpuMs')), p.samples.length]),
      },
      notes: [
        'references: kvfabric_nodes_ms vs redis-cli PING, kvfabric_nodes_vs_etcdctl_ms vs etcdctl endpoint health, ' +
          'kvfabric_help_ms vs `node -e 0` (the Node.js floor), kvfabric_nodes_cpu_ms vs etcdctl CPU',
        `goal: kvfabric nodes under 150 ms: ${med(nodesCmd, 'wallMs') < 150 ? 'met' : 'NOT met'} (${ms(med(nodesCmd, 'wallMs'))} ms)`,
      ],
    };
  } finally {
    for (const n of nodes) await n[Symbol.asyncDispose]();
  }
}

const scenario: Scenario = {
  name: 'cli',
  description: 'kvfabric CLI cold start vs redis-cli, etcdctl and bare node',
  run,
};
export default scenario;
