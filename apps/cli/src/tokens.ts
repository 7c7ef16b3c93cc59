// Token files for `hash` and `locate --tokens`: a JSON array of token ids, hashed into vLLM-compatible chained
// block hashes (sha256_cbor, PYTHONHASHSEED as the seed) by @kvfabric/common's block-hash.
import { readFileSync } from 'node:fs';
import { echo, hashTokenBlocks, invalid } from '@kvfabric/common';

/** Reads FILE ("-" is stdin) as a JSON array of non-negative integer token ids. Errors name --tokens. */
export function readTokens(file: string): number[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw invalid('--tokens', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('--tokens', `expected a JSON array of token ids in ${file}`);
  }
  if (!Array.isArray(value)) throw invalid('--tokens', `expected a JSON array of token ids in ${file}`);
  // JSON.parse takes any depth; the message only describes a bad item (`echo` never recurses into it)
  value.forEach((t, i) => {
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
      throw invalid('--tokens', `expected non-negative integer token ids in ${file}, item ${i} is ${echo(t)}`);
    }
  });
  return value as number[];
}

/** The seed: --hash-seed, else PYTHONHASHSEED from the environment (what vLLM reads), else none. */
export function resolveSeed(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (flag !== undefined) return flag;
  const python = env.PYTHONHASHSEED;
  return python !== undefined && python !== '' ? python : undefined;
}

export interface TokenHashes {
  tokens: number;
  blockSize: number;
  seed: string | undefined;
  hashes: Buffer[];
}

/** Hashes every full block of the file's tokens. Fails (exit 2) when not even one block is full. */
export function hashTokenFile(file: string, blockSize: number, seed: string | undefined): TokenHashes {
  const tokens = readTokens(file);
  if (tokens.length < blockSize) {
    throw invalid(
      '--tokens',
      `${file} holds ${tokens.length} tokens, fewer than one block of --block-size ${blockSize}`,
    );
  }
  return {
    tokens: tokens.length,
    blockSize,
    seed,
    hashes: hashTokenBlocks(tokens, blockSize, seed === undefined ? {} : { seed }),
  };
}
