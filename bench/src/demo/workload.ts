// A multi-turn, shared-prefix chat workload: a few system prompts shared by many conversations; every turn
// re-sends the whole conversation so far. Token ids are deterministic for a given seed.

export interface DemoRequest {
  conversation: number;
  turn: number;
  tokens: number[];
}

export interface WorkloadOptions {
  conversations: number;
  turns: number;
  systemPrompts: number;
  systemPromptTokens: number;
  userTokens: [number, number];
  replyTokens: [number, number];
  seed: number;
}

/** Small deterministic PRNG (mulberry32), so runs are repeatable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Requests in arrival order: turns of different conversations interleave (round-robin over conversations),
 * as on a real server.
 */
export function chatWorkload(opts: WorkloadOptions): DemoRequest[] {
  const rand = prng(opts.seed);
  const between = ([lo, hi]: [number, number]) => lo + Math.floor(rand() * (hi - lo + 1));
  const tokens = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 32000));
  const prompts = Array.from({ length: opts.systemPrompts }, () => tokens(opts.systemPromptTokens));
  const contexts = Array.from({ length: opts.conversations }, (_, c) => [...prompts[c % prompts.length]!]);
  const requests: DemoRequest[] = [];
  for (let turn = 0; turn < opts.turns; turn++) {
    for (let c = 0; c < opts.conversations; c++) {
      const ctx = contexts[c]!;
      ctx.push(...tokens(between(opts.userTokens)));
      requests.push({ conversation: c, turn, tokens: [...ctx] });
      ctx.push(...tokens(between(opts.replyTokens)));
    }
  }
  return requests;
}
