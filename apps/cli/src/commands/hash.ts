// kvfabric hash: vLLM-compatible chained block hashes of a token file. Needs no server.
import { defineCommand } from '../command.js';
import { hashPrinter, type HashResult } from '../printers/hash.js';
import { HASH_FLAGS, hashTokenFile, resolveExtraKeys, resolveSeed } from '../tokens.js';

export const hash = defineCommand({
  name: 'hash',
  summary: "Compute vLLM's chained sha256_cbor block hashes of a token file (JSON array of token ids).",
  flags: {
    tokens: { kind: 'string', description: 'file with a JSON array of token ids ("-" for stdin)', required: true },
    'block-size': { kind: 'int', description: 'tokens per block', required: true, min: 1, max: 1 << 20 },
    ...HASH_FLAGS,
  },
  needsServer: false,
  // Reading and hashing the file is argument checking: a bad file exits 2.
  parse: (config, env): HashResult =>
    hashTokenFile(config.tokens, config.blockSize, resolveSeed(config.hashSeed, env), resolveExtraKeys(config)),
  run: async (result, { warn }): Promise<HashResult> => {
    if (result.seed.from === 'default')
      warn(
        `no --hash-seed or PYTHONHASHSEED: hashing from vLLM's default root seed "${result.seed.seed}", as vLLM does for sha256 and sha256_cbor when PYTHONHASHSEED is unset`,
      );
    return result;
  },
  printer: hashPrinter,
});
