// Which cores a bench's server and its clients run on, when asked (KVFABRIC_BENCH_PIN=1). By default the server
// under test and its load processes share every core, and the server's JavaScript thread can wait for a core its
// clients hold, in the middle of a collector pause too. Pinned, the metaserver benches give each server (the
// metaserver, the unary floor, Redis: all alike) core 0 and the load processes the others, so a server's pauses
// are its own work. A diagnostic, not the default: on a 2-core host the clients then have one core, which bounds
// the queries/s of every server.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface CoreSplit {
  /** taskset CPU lists. */
  server: string;
  clients: string;
}

/** The split when KVFABRIC_BENCH_PIN=1 asks for one (coreSplit), else undefined. */
export function requestedCoreSplit(env = process.env): CoreSplit | undefined {
  return env.KVFABRIC_BENCH_PIN === '1' ? coreSplit() : undefined;
}

/** Core 0 for servers, the rest for clients; undefined on a single core, or where taskset can not pin. */
export function coreSplit(cores = availableParallelism()): CoreSplit | undefined {
  if (cores < 2) return undefined;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return { server: '0', clients: cores === 2 ? '1' : `1-${cores - 1}` };
}

/** Pins every thread of process `pid` (and the threads they start later) to `cpus`. */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}
