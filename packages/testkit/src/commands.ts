// Where the kvfabric commands are installed: the `node_modules/.bin` entries npm links for the workspace's bins
// (what an operator runs after `npm install`), found by walking up from the working directory and from this module.
// KVFABRIC_BIN_DIR overrides the search (a directory holding kvfabric, kvfabric-node and kvfabric-metaserver).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type CommandName = 'kvfabric' | 'kvfabric-node' | 'kvfabric-metaserver';

function* upFrom(dir: string): Generator<string> {
  for (let d = dir; ; d = dirname(d)) {
    yield d;
    if (dirname(d) === d) return;
  }
}

/** The path of an installed kvfabric command; throws with the places searched when it is not installed. */
export function commandPath(name: CommandName): string {
  const override = process.env.KVFABRIC_BIN_DIR;
  if (override) return join(override, name);
  const tried: string[] = [];
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    for (const dir of upFrom(start)) {
      const candidate = join(dir, 'node_modules', '.bin', name);
      if (existsSync(candidate)) return candidate;
      tried.push(candidate);
    }
  }
  throw new Error(
    `testkit: command ${name} is not installed (run \`npm install\`); looked for ${tried.slice(0, 4).join(', ')}, ...`,
  );
}

/**
 * The node flags a command's `#!/usr/bin/env -S node FLAGS` line gives it, for starting it as `node FLAGS path`
 * (what running the file itself does): the processes under test run with the flags an operator's do.
 */
export function shebangNodeFlags(path: string): string[] {
  const first = readFileSync(path, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}

/** The three kvfabric commands, resolved when first read. */
export const BIN = {
  get metaserver(): string {
    return commandPath('kvfabric-metaserver');
  },
  get node(): string {
    return commandPath('kvfabric-node');
  },
  get cli(): string {
    return commandPath('kvfabric');
  },
};
