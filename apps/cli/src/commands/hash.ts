// kvfabric hash: vLLM-compatible chained block hashes of a token file. Needs no server.
import { defineCommand } from '../command.js';
import { hashPrinter, type HashResult } from '../printers/hash.js';
import { hashTokenFile, resolveSeed } from '../tokens.js';

export const hash = defineCommand({
  name: 'hash',
  summary: "Compute vLLM's chained sha256_cbor block hashes of a token file (JSON array of token ids).",
  flags: {
    tokens: { kind: 'string', description: 'file with a JSON array of token ids ("-" for stdin)', required: true },
    'block-size': { kind: 'int', description: 'tokens per block', required: true, min: 1, max: 1 << 20 },
    'hash-seed': {
      kind: 'string',
      description: "vLLM's PYTHONHASHSEED (defaults to $PYTHONHASHSEED; without one the root is random, as in vLLM)",
    },
  },
  needsServer: false,
  // Reading and hashing the file is argument checking: a bad file exits 2.
  parse: (config, env): HashResult => hashTokenFile(config.tokens, config.blockSize, resolveSeed(config.hashSeed, env)),
  run: async (result, { warn }): Promise<HashResult> => {
    if (result.seed === undefined)
      warn(
        'no --hash-seed or PYTHONHASHSEED: the root hash is random (as in vLLM), these hashes match no other process',
      );
    return result;
  },
  printer: hashPrinter,
});
