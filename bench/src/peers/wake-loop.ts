// The reference engine of the wake floor (wake.ts), forked with IPC: a Node process whose event loop watches an
// eventfd through the SDK's own watcher (a command ring of @kvfabric/native/fd-pass, the addon the engine SDK uses)
// and does nothing on a wake but count it. Its child, wake.c, writes the eventfd. For each `run` it reports how many
// wakes it saw and the CPU this process spent from the request until the last of them.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { createCommandRing } from '@kvfabric/native/fd-pass';

export type ToWakeLoop = { kind: 'run'; count: number; gapUs: number };
export type FromWakeLoop = { kind: 'ready' } | { kind: 'done'; wakes: number; cpuSeconds: number };

/** Writes that coalesced into fewer wakes are waited for this long after the writer finished. */
const GRACE_MS = 20;

const binary = process.argv[2];
if (binary === undefined) throw new Error('wake-loop: the waker binary is the first argument');

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let wakes = 0;
let target = 0;
let started = 0;
/** Runs asked for, and runs the writer said it finished (its "done" lines, in order). */
let runs = 0;
let finished = 0;
let reported = 0;
const report = (run: number) => {
  if (run !== runs || reported === run) return;
  reported = run;
  const cpuSeconds = cpu() - started;
  process.send!({ kind: 'done', wakes, cpuSeconds } satisfies FromWakeLoop);
};
const ring = createCommandRing({ name: 'kvfabric-bench-wake', entries: 1, slotBytes: 64 }, () => {
  if (++wakes === target) report(runs);
});
// Descriptor 3 of the writer is the eventfd (stdin: its runs; stdout: a line as each ends).
const writer = spawn(binary, [], {
  stdio: ['pipe', 'pipe', 'inherit', ring.eventFd],
}) as ChildProcessByStdio<Writable, Readable, null>;
writer.once('exit', (code, signal) => {
  ring.close();
  if (code !== 0) console.error(`wake-loop: waker exited (${code ?? signal})`);
  if (process.connected) process.disconnect();
});
// The writer finished a run: if its writes coalesced into fewer wakes, the run ends after a grace period.
createInterface({ input: writer.stdout }).on('line', () => {
  const run = ++finished;
  setTimeout(() => report(run), GRACE_MS);
});

process.on('message', (m: ToWakeLoop) => {
  runs++;
  wakes = 0;
  target = m.count;
  started = cpu();
  writer.stdin.write(`${m.count} ${m.gapUs}\n`);
});
process.on('disconnect', () => writer.stdin.end());
process.send!({ kind: 'ready' } satisfies FromWakeLoop);
