// The reference programs written in C (bench/src/peers/*.c), compiled with `cc -O2` ($CC overrides) into a temp dir
// per peer object, removed when it is disposed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export class CPeerBinary implements Disposable {
  readonly path: string;
  readonly #dir: string;

  /** Compiles bench/src/peers/`name`.c with `flags` into a binary named `name`. */
  constructor(name: string, flags: string[] = []) {
    this.#dir = mkdtempSync(join(tmpdir(), `kvfabric-${name}-`));
    this.path = join(this.#dir, name);
    // The C sources stay in src/ (tsc copies no .c files): reached the same way from src/peers and dist/peers.
    const source = fileURLToPath(new URL(`../../src/peers/${name}.c`, import.meta.url));
    execFileSync(process.env.CC ?? 'cc', ['-O2', ...flags, '-o', this.path, source], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }

  [Symbol.dispose](): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
