// kvfabric: the operator CLI. `main` parses, runs one command and sets the exit code (see cli.ts for the codes).
// bin/kvfabric.mjs runs it from the bundle (dist/kvfabric.cjs, see bundle/load.ts); this module is the bundle's entry.
import { runCli } from './cli.js';

export { runCli } from './cli.js';

export function main(): void {
  // `kvfabric nodes | head -1`: a closed pipe ends the output, not the process with a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  void runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
  });
}
