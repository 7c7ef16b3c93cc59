/**
 * Chained block hashes, byte-identical to vLLM v1 prefix caching with `--prefix-caching-hash-algo sha256_cbor`.
 *
 * What vLLM does (read in the vLLM release the connector pins, 0.33.0; connectors/vllm tests check it against the
 * installed package):
 *
 * - `vllm/utils/hashing.py` `sha256_cbor(input)`: `hashlib.sha256(cbor2.dumps(input, canonical=True)).digest()`,
 *   i.e. 32 raw digest bytes.
 * - `vllm/v1/core/kv_cache_utils.py`:
 *   - `BlockHash = NewType("BlockHash", bytes)`: a block hash is the raw digest, so inside the next block's CBOR
 *     the parent is a **byte string** (`58 20` + 32 bytes), not an int. (Older releases kept an int `hash_value`
 *     in a `BlockHashType` NamedTuple and `sha256_cbor_64bit`; that scheme is not what this module computes.
 *     `maybe_convert_block_hash` only truncates to the low 64 bits for KV *events* when
 *     `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES` is set; chaining always uses the full bytes.)
 *   - `init_none_hash(hash_fn)`: `NONE_HASH = hash_fn(seed)`, where the seed is `PYTHONHASHSEED`'s **text** when
 *     the variable is set (`os.getenv(...) is not None`, so an empty value is the seed `""`), else the fixed
 *     `DEFAULT_NONE_HASH_SEED = "vllm-none-hash"` for the cryptographic `sha256`/`sha256_cbor` (xxhash keeps a
 *     random per-process seed). The CBOR of a seed is a text string: seed "0" → `sha256(61 30)` =
 *     `4e1195df…2e61c3e`; "00" and "random" are distinct texts.
 *   - `hash_block_tokens(hash_function, parent_block_hash, curr_block_token_ids, extra_keys=None)`:
 *     `if not parent_block_hash: parent_block_hash = NONE_HASH`, then
 *     `hash_function((parent_block_hash, tuple(curr_block_token_ids), extra_keys))` — a 3-tuple, CBOR array `83`,
 *     token ids as an array of ints, `extra_keys` a tuple (array) or None (`f6`).
 *   - `get_request_block_hasher(block_size, hash_fn)`: walks `all_token_ids` in `block_size` steps, parent of
 *     block 0 is None (→ NONE_HASH), each later parent is the previous block's hash, and it stops at the first
 *     block that is not full ("We only hash full blocks").
 *   - `generate_block_hash_extra_keys`: tagged tuples, in this order: `("lora", lora_name, lora_path)` on every
 *     block of a LoRA request, multimodal `("mm", identifier, offset_in_block)`, `("cache_salt", salt)` on block 0
 *     only, `("prompt_embeds", sha256 bytes)`; returns **None when empty**, never `()`. `hashTokenBlocks`
 *     therefore maps an empty list from its `extraKeys` callback to null; the raw `hashBlockTokens` encodes exactly
 *     what it is given (`[]` → `80`, which vLLM never produces). `requestExtraKeys` builds the LoRA and salt keys.
 * - vLLM's own tests (`tests/v1/core/test_kv_cache_utils.py` `test_hash_block_tokens`, `test_request_block_hasher`)
 *   compare against `hash_fn((parent, tokens, extra))` structurally and publish no digest values, so our vectors
 *   are hand-derived CBOR bytes (RFC 8949) plus SHA-256 (see block-hash.test.ts).
 *
 * CBOR encoding of those Python values: see `cbor-canonical.ts`.
 */
import { createHash } from 'node:crypto';
import { CborWriter, shown, type CborValue } from './cbor-canonical.js';
import { invalid } from './errors.js';

/** Bytes in a NONE_HASH and in every sha256_cbor block hash. */
export const BLOCK_HASH_BYTES = 32;

/** vLLM's root seed for sha256 / sha256_cbor when `PYTHONHASHSEED` is unset (`DEFAULT_NONE_HASH_SEED`). */
export const DEFAULT_NONE_HASH_SEED = 'vllm-none-hash';

export interface HashTokenBlocksOptions {
  /** Text of vLLM's `PYTHONHASHSEED` (may be empty); the root of every chain. Default: `DEFAULT_NONE_HASH_SEED`. */
  seed?: string;
  /** A precomputed root (from `noneHash`), instead of `seed`. */
  noneHash?: Buffer;
  /** vLLM's extra keys for block `blockIndex` (see `requestExtraKeys`); `[]` ≡ null. */
  extraKeys?: (blockIndex: number) => unknown[] | null;
}

/** vLLM's `sha256_cbor`: SHA-256 over the canonical CBOR of `value`. */
export function sha256Cbor(value: CborValue): Buffer {
  return sha256(new CborWriter().value(value).finish());
}

/**
 * vLLM's `NONE_HASH`, the parent of block 0: `sha256_cbor(seed)` for a `PYTHONHASHSEED` text (the empty text
 * included), or for `DEFAULT_NONE_HASH_SEED` when there is none, as vLLM does for sha256 / sha256_cbor.
 */
export function noneHash(seed: string = DEFAULT_NONE_HASH_SEED): Buffer {
  if (typeof seed !== 'string') throw invalid('seed', 'expected a string like "0"', shown(seed));
  return sha256(new CborWriter().text(seed, 'seed').finish());
}

/** vLLM's `hash_block_tokens` with `sha256_cbor`: `sha256(cbor((parent, tuple(tokens), extraKeys)))`. */
export function hashBlockTokens(parent: Buffer, tokens: readonly number[], extraKeys?: unknown[] | null): Buffer {
  if (!(parent instanceof Uint8Array) || parent.length === 0) {
    // vLLM substitutes NONE_HASH for a falsy parent; we have no global root, so the caller must pass it.
    throw invalid('parent', 'expected a non-empty hash (pass noneHash() for block 0)', shown(parent));
  }
  if (!Array.isArray(tokens) || tokens.length === 0) {
    throw invalid('tokens', 'expected a non-empty array of token ids', shown(tokens));
  }
  return sha256(encodeBlock(parent, tokens, 0, tokens.length, extraKeys ?? null));
}

/** What vLLM's `generate_block_hash_extra_keys` adds for a text-only request (no multimodal, no prompt embeds). */
export interface RequestExtraKeys {
  /** `LoRARequest.lora_name` and `.lora_path`: `("lora", name, path)` on every block. */
  lora?: { name: string; path: string };
  /** `SamplingParams`' `cache_salt`: `("cache_salt", salt)` on block 0; an empty salt adds nothing (as in vLLM). */
  cacheSalt?: string;
}

/** The `extraKeys` callback for `hashTokenBlocks` that reproduces vLLM's keys for such a request. */
export function requestExtraKeys(keys: RequestExtraKeys): (blockIndex: number) => CborValue[] | null {
  const lora = keys.lora ? [['lora', keys.lora.name, keys.lora.path] as CborValue] : [];
  const salt = keys.cacheSalt ? [['cache_salt', keys.cacheSalt] as CborValue] : [];
  return (block) => {
    const all = block === 0 ? [...lora, ...salt] : lora;
    return all.length > 0 ? all : null;
  };
}

/**
 * Hashes every full block of `tokens` (a trailing partial block is ignored), each chained on the previous one
 * and block 0 on the root from `opts.noneHash`, else `opts.seed`, else vLLM's default seed.
 */
export function hashTokenBlocks(
  tokens: readonly number[],
  blockSize: number,
  opts: HashTokenBlocksOptions = {},
): Buffer[] {
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
    throw invalid('block-size', 'expected a positive integer', shown(blockSize));
  }
  if (!Array.isArray(tokens)) throw invalid('tokens', 'expected an array of token ids', shown(tokens));
  if (opts.seed !== undefined && opts.noneHash !== undefined) {
    throw invalid('none-hash', 'expected either seed or noneHash, not both');
  }
  let parent: Buffer = opts.noneHash ?? noneHash(opts.seed);
  if (!(parent instanceof Uint8Array) || parent.length === 0) {
    throw invalid('none-hash', 'expected a non-empty byte string', shown(parent));
  }
  const hashes: Buffer[] = [];
  for (let start = 0, block = 0; start + blockSize <= tokens.length; start += blockSize, block++) {
    const keys = opts.extraKeys?.(block) ?? null;
    parent = sha256(encodeBlock(parent, tokens, start, start + blockSize, keys && keys.length > 0 ? keys : null));
    hashes.push(parent);
  }
  return hashes;
}

/** CBOR of `(parent, tuple(tokens[start:end]), extraKeys)`, validating tokens as it goes. */
function encodeBlock(
  parent: Uint8Array,
  tokens: readonly number[],
  start: number,
  end: number,
  extraKeys: unknown[] | null,
): Buffer {
  const w = new CborWriter()
    .arrayHeader(3)
    .bytes(parent)
    .arrayHeader(end - start);
  for (let i = start; i < end; i++) {
    const token = tokens[i];
    if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 0) {
      throw invalid(`tokens[${i}]`, 'expected a non-negative safe integer', shown(token));
    }
    w.head(0, token);
  }
  if (extraKeys !== null && !Array.isArray(extraKeys)) {
    throw invalid('extra-keys', 'expected an array or null', shown(extraKeys));
  }
  return w.value(extraKeys as CborValue, 'extra-keys').finish();
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}
