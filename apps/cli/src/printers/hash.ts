// Printer for `hash`: {"hashes":[hex,...],"blockSize","tokens","seed","seedFrom","cacheSalt","lora"}.
import type { Printer } from '../command.js';
import type { TokenHashes } from '../tokens.js';
import { renderTable } from './format.js';

export type HashResult = TokenHashes;

export const hashPrinter: Printer<HashResult> = {
  json: (r) => ({
    hashes: r.hashes.map((h) => h.toString('hex')),
    blockSize: r.blockSize,
    tokens: r.tokens,
    seed: r.seed.seed,
    seedFrom: r.seed.from,
    cacheSalt: r.extraKeys.cacheSalt ?? null,
    lora: r.extraKeys.lora ?? null,
  }),
  table: (r) =>
    renderTable(
      [{ title: 'BLOCK', right: true }, { title: 'TOKENS' }, { title: 'HASH' }],
      r.hashes.map((h, i) => [String(i), `${i * r.blockSize}..${(i + 1) * r.blockSize - 1}`, h.toString('hex')]),
    ),
};
