// kvfabric locate: which live nodes hold a prefix of the given hashes, and with --blocks the owners of each block.
import { checkNamespace, hexToHashes, invalid, KvError } from '@kvfabric/common';
import { defineCommand } from '../command.js';
import { locatePrinter, type LocateResult } from '../printers/locate.js';
import { HASH_FLAGS, hashTokenFile, resolveExtraKeys, resolveSeed } from '../tokens.js';

interface LocateArgs {
  namespace: string;
  hashes: Buffer[];
  blocks: boolean;
}

export const locate = defineCommand({
  name: 'locate',
  summary: 'Show every live node holding a prefix of the hashes (--hashes HEX,HEX or --tokens FILE --block-size N).',
  flags: {
    namespace: { kind: 'string', description: 'namespace of the blocks', required: true },
    hashes: { kind: 'string', description: 'comma-separated hex block hashes, in prefix order' },
    tokens: { kind: 'string', description: 'file with a JSON array of token ids, hashed like vLLM ("-" for stdin)' },
    'block-size': { kind: 'int', description: 'tokens per block (with --tokens)', min: 1, max: 1 << 20 },
    ...HASH_FLAGS,
    blocks: { kind: 'bool', description: 'also list the owners of every block', default: false },
  },
  needsServer: true,
  parse: (config, env): LocateArgs => {
    const problems: string[] = [];
    const check = <T>(fn: () => T): T | undefined => {
      try {
        return fn();
      } catch (err) {
        if (!(err instanceof KvError)) throw err;
        problems.push(err.message);
        return undefined;
      }
    };
    const namespace = check(() => checkNamespace(config.namespace, '--namespace'));
    let hashes: Buffer[] | undefined;
    if (config.hashes !== undefined && config.tokens !== undefined) {
      problems.push('--hashes, --tokens: expected one of them, not both');
    } else if (config.hashes !== undefined) {
      if (config.blockSize !== undefined) problems.push('--block-size: only with --tokens');
      hashes = check(() => {
        const list = hexToHashes(config.hashes!, '--hashes');
        const len = list[0]!.length;
        const odd = list.findIndex((h) => h.length !== len);
        if (odd >= 0)
          throw invalid(`--hashes[${odd}]`, `expected ${len} bytes like the first hash`, list[odd]!.toString('hex'));
        return list;
      });
    } else if (config.tokens !== undefined) {
      const seed = resolveSeed(config.hashSeed, env);
      const extraKeys = check(() => resolveExtraKeys(config));
      if (config.blockSize === undefined) problems.push('--block-size: required with --tokens');
      if (config.blockSize !== undefined && extraKeys !== undefined)
        hashes = check(() => hashTokenFile(config.tokens!, config.blockSize!, seed, extraKeys).hashes);
    } else {
      problems.push('--hashes or --tokens: required');
    }
    if (problems.length > 0) throw new KvError('CONFIG_INVALID', problems.join('; '));
    return { namespace: namespace!, hashes: hashes!, blocks: config.blocks };
  },
  run: async (args, { client }): Promise<LocateResult> => {
    const [prefix, owners] = await Promise.all([
      client!.queryPrefix(args.namespace, args.hashes),
      args.blocks ? client!.queryOwners(args.namespace, args.hashes) : undefined,
    ]);
    return { namespace: args.namespace, hashes: args.hashes, prefix, owners };
  },
  printer: locatePrinter,
});
