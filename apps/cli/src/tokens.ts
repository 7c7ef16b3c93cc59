// Token files for `hash` and `locate --tokens`: a JSON array of token ids, hashed into vLLM-compatible chained
// block hashes (sha256_cbor; root from --hash-seed, PYTHONHASHSEED or vLLM's default seed; LoRA and cache-salt
// extra keys) by @kvfabric/common's chained-block-hash.
import { readFileSync } from 'node:fs';
import {
  DEFAULT_NONE_HASH_SEED,
  echo,
  hashTokenBlocks,
  invalid,
  requestExtraKeys,
  type FlagSpecs,
  type RequestExtraKeys,
} from '@kvfabric/common';

/** The flags that shape the hashes, shared by `hash` and `locate --tokens`. */
export const HASH_FLAGS = {
  'hash-seed': {
    kind: 'string',
    allowEmpty: true,
    description: `vLLM's PYTHONHASHSEED (defaults to $PYTHONHASHSEED, even empty; unset: vLLM's "${DEFAULT_NONE_HASH_SEED}")`,
  },
  'cache-salt': { kind: 'string', description: "the request's cache_salt (vLLM adds it to block 0)" },
  'lora-name': { kind: 'string', description: "the request's LoRA adapter name (with --lora-path)" },
  'lora-path': { kind: 'string', description: "the request's LoRA adapter path (with --lora-name)" },
} as const satisfies FlagSpecs;

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

export interface Seed {
  seed: string;
  /** Where it came from: vLLM's default applies only when neither the flag nor PYTHONHASHSEED is set. */
  from: '--hash-seed' | 'PYTHONHASHSEED' | 'default';
}

/**
 * The seed as vLLM resolves it: --hash-seed, else PYTHONHASHSEED when set (`os.getenv(...) is not None`, so an
 * empty value is the seed ""), else vLLM's DEFAULT_NONE_HASH_SEED.
 */
export function resolveSeed(flag: string | undefined, env: NodeJS.ProcessEnv): Seed {
  if (flag !== undefined) return { seed: flag, from: '--hash-seed' };
  const python = env.PYTHONHASHSEED;
  return python !== undefined
    ? { seed: python, from: 'PYTHONHASHSEED' }
    : { seed: DEFAULT_NONE_HASH_SEED, from: 'default' };
}

/** The extra keys from --cache-salt, --lora-name and --lora-path (both LoRA flags or neither). */
export function resolveExtraKeys(flags: {
  cacheSalt?: string;
  loraName?: string;
  loraPath?: string;
}): RequestExtraKeys {
  if ((flags.loraName === undefined) !== (flags.loraPath === undefined))
    throw invalid(
      flags.loraName === undefined ? '--lora-name' : '--lora-path',
      'required with ' + (flags.loraName === undefined ? '--lora-path' : '--lora-name'),
    );
  return {
    ...(flags.loraName !== undefined ? { lora: { name: flags.loraName, path: flags.loraPath! } } : {}),
    ...(flags.cacheSalt !== undefined ? { cacheSalt: flags.cacheSalt } : {}),
  };
}

export interface TokenHashes {
  tokens: number;
  blockSize: number;
  seed: Seed;
  extraKeys: RequestExtraKeys;
  hashes: Buffer[];
}

/** Hashes every full block of the file's tokens. Fails (exit 2) when not even one block is full. */
export function hashTokenFile(
  file: string,
  blockSize: number,
  seed: Seed,
  extraKeys: RequestExtraKeys = {},
): TokenHashes {
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
    extraKeys,
    hashes: hashTokenBlocks(tokens, blockSize, { seed: seed.seed, extraKeys: requestExtraKeys(extraKeys) }),
  };
}
