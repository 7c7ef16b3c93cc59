// Vectors for vLLM-compatible sha256_cbor block hashing. Python cbor2 is not available here, so trust comes from:
//  (a) CBOR bytes written by hand from RFC 8949 (shortest-form heads, definite lengths), checked against our encoder;
//  (b) SHA-256 of those exact bytes, pinned as hex (computed with `xxd -r -p | sha256sum`, independent of this code);
//  (c) a 3-block chain for seed "0", pinned and re-derived here through the npm `cbor2` package (cde mode), whose
//      bytes for (Uint8Array, int[], null) equal Python cbor2 canonical: byte string, minimal ints, array, f6.
// NONE_HASH for PYTHONHASHSEED "0", "00", "random", "4294967295" matches the values independent vLLM-compatible
// routers publish (e.g. 4e1195df… for "0"); vLLM's own tests publish no digests (they compare structurally).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encode as cbor2Encode } from 'cbor2';
import { encodeCanonical, type CborValue } from './cbor-canonical.js';
import {
  DEFAULT_NONE_HASH_SEED,
  hashBlockTokens,
  hashTokenBlocks,
  noneHash,
  requestExtraKeys,
  sha256Cbor,
} from './chained-block-hash.js';
import { KvError } from './errors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const P32 = Buffer.from(Array.from({ length: 32 }, (_, i) => i)); // 00 01 .. 1f
const P32_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const DEFAULT_ROOT = '9bd96a485ad84efdafb72ee48a1d7a69bcead0f8f0433173941b276b9581eef0';

test('canonical CBOR: hand-written RFC 8949 encodings', () => {
  const cases: Array<[CborValue, string]> = [
    [null, 'f6'],
    [true, 'f5'],
    [false, 'f4'],
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [4294967295, '1affffffff'],
    [4294967296, '1b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [(1n << 64n) - 1n, '1bffffffffffffffff'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-65537, '3a00010000'],
    [-4294967297, '3b0000000100000000'],
    [-(1n << 64n), '3bffffffffffffffff'],
    [[], '80'],
    [[[]], '8180'],
    [[1, [2, 3]], '8201820203'],
    [Array.from({ length: 24 }, () => 0), '9818' + '00'.repeat(24)],
    ['', '60'],
    ['0', '6130'],
    ['my-lora', '676d792d6c6f7261'],
    ['é', '62c3a9'],
    ['a'.repeat(24), '7818' + '61'.repeat(24)],
    [new Uint8Array(0), '40'],
    [Buffer.from('123'), '43313233'],
    [P32, '5820' + P32_HEX],
  ];
  for (const [value, want] of cases) assert.equal(hex(encodeCanonical(value)), want, `value ${String(value)}`);
});

test('canonical CBOR: refuses values vLLM never hashes, naming the field', () => {
  const bad: Array<[unknown, RegExp]> = [
    [1.5, /^value: expected a safe integer .*got 1\.5$/],
    [2 ** 53, /got 9007199254740992$/],
    [NaN, /got "NaN"$/],
    [1n << 64n, /got "18446744073709551616n"$/],
    [undefined, /^value: expected null, boolean/],
    [{ a: 1 }, /got an object$/],
    ['\ud800', /expected a well-formed Unicode string/],
  ];
  for (const [value, msg] of bad) {
    assert.throws(
      () => encodeCanonical(value as CborValue),
      (e: unknown) => e instanceof KvError && msg.test(e.message),
    );
  }
  assert.equal(hex(encodeCanonical('😀')), '64f09f9880'); // a valid surrogate pair is fine
  assert.throws(() => encodeCanonical([1, [2, 0.5]]), /^KvError: value\[1\]\[1\]: /);
});

test('hashBlockTokens: vLLM test_hash_block_tokens shape (b"123", (1,2,3), ("key1","key2"))', () => {
  // 83 | 43 "123" | 83 01 02 03 | 82 64 "key1" 64 "key2"
  const cbor = '83433132338301020382646b657931646b657932';
  assert.equal(hex(encodeCanonical([Buffer.from('123'), [1, 2, 3], ['key1', 'key2']])), cbor);
  const want = '75f96f75f082518549ca45da83610d619f8c63528c78f8aef470d43f1647317d';
  assert.equal(sha(Buffer.from(cbor, 'hex')), want);
  assert.equal(hex(hashBlockTokens(Buffer.from('123'), [1, 2, 3], ['key1', 'key2'])), want);
});

test('hashBlockTokens: 32-byte parent, integer boundaries, None extra keys', () => {
  const tokens = [0, 23, 24, 255, 256, 65535, 65536, 4294967295, 4294967296, Number.MAX_SAFE_INTEGER];
  const cbor = `835820${P32_HEX}8a0017181818ff19010019ffff1a000100001affffffff1b00000001000000001b001ffffffffffffff6`;
  assert.equal(hex(encodeCanonical([P32, tokens, null])), cbor);
  const want = '0c6e7826abf647bcf95444ed6a5744a884ba00c272d616118b43c31b4a3e177c';
  assert.equal(sha(Buffer.from(cbor, 'hex')), want);
  assert.equal(hex(hashBlockTokens(P32, tokens)), want);
  assert.equal(hex(hashBlockTokens(P32, tokens, null)), want);
  assert.equal(hex(sha256Cbor([P32, tokens, null])), want);
});

test('hashBlockTokens: LoRA + multimodal (identifier, offset) + cache salt extra keys', () => {
  // extra = ("my-lora", ("mm_hash_a", 0), "salt"), the order generate_block_hash_extra_keys builds
  const cbor = `835820${P32_HEX}840102030483676d792d6c6f726182696d6d5f686173685f61006473616c74`;
  const extra = ['my-lora', ['mm_hash_a', 0], 'salt'];
  assert.equal(hex(encodeCanonical([P32, [1, 2, 3, 4], extra])), cbor);
  const want = 'aaef385edf3a6f6410a18b4f7f5b3876f446b7ded312de717c417591a1cef4f1';
  assert.equal(sha(Buffer.from(cbor, 'hex')), want);
  assert.equal(hex(hashBlockTokens(P32, [1, 2, 3, 4], extra)), want);
  // () is not None: the raw primitive keeps the difference (vLLM itself never passes an empty tuple)
  assert.equal(hex(hashBlockTokens(P32, [1], [])), sha(Buffer.from(`835820${P32_HEX}810180`, 'hex')));
});

test('noneHash: sha256_cbor of the PYTHONHASHSEED text, vLLM\'s "vllm-none-hash" without it', () => {
  const seeds: Array<[string, string, string]> = [
    ['0', '6130', '4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e'],
    ['00', '623030', '8d912e4e62b3cc377b1d1c7a14ef61dffbdaa0990237035c05401c29414c4172'],
    ['random', '6672616e646f6d', '78d6ac7e28de859e492449dcea03e3807377d69998c5af819fed33a6df490cad'],
    ['4294967295', '6a34323934393637323935', '177f280a5695322a18f16c96a26dc99d9c03f905940103dfe24a9c646fe446a8'],
    ['', '60', '8d33f520a3c4cef80d2453aef81b612bfe1cb44c8b2025630ad38662763f13d3'],
  ];
  for (const [seed, cbor, want] of seeds) {
    assert.equal(hex(encodeCanonical(seed)), cbor);
    assert.equal(sha(Buffer.from(cbor, 'hex')), want);
    assert.equal(hex(noneHash(seed)), want, `seed ${JSON.stringify(seed)}`);
  }
  // vLLM's DEFAULT_NONE_HASH_SEED, CBOR text of 14 bytes (6e …), hashed with `xxd -r -p | sha256sum`
  assert.equal(DEFAULT_NONE_HASH_SEED, 'vllm-none-hash');
  assert.equal(hex(encodeCanonical(DEFAULT_NONE_HASH_SEED)), '6e766c6c6d2d6e6f6e652d68617368');
  assert.equal(hex(noneHash()), DEFAULT_ROOT);
  assert.equal(hex(hashTokenBlocks([1, 2], 2)[0]!), hex(hashBlockTokens(Buffer.from(DEFAULT_ROOT, 'hex'), [1, 2])));
});

// Seed "0", block size 4, tokens 1..13: three full blocks; token 13 is a partial block and is not hashed.
const CHAIN_TOKENS = Array.from({ length: 13 }, (_, i) => i + 1);
const CHAIN = [
  'c9d58ba695280d69b243e1e0df813136ca9196b286fb1a021e0b2e028ef071cb',
  '24125b23e68883b5c2141db2959d48433fe6bde2f26bd914efad121d154ab2d6',
  'e628d7f6f15c524d67345b6a98489c375c91df1c31e3d154daed446d95c926b2',
];

test('hashTokenBlocks: 3-block chain for seed "0" (pinned)', () => {
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS, 4, { seed: '0' }).map(hex), CHAIN);
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS, 4, { noneHash: noneHash('0') }).map(hex), CHAIN);
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS.slice(0, 12), 4, { seed: '0' }).map(hex), CHAIN);
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS.slice(0, 11), 4, { seed: '0' }).map(hex), CHAIN.slice(0, 2));
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS.slice(0, 3), 4, { seed: '0' }), []);
  // block i's hash covers blocks 0..i: a different block 0 changes every later hash
  const other = hashTokenBlocks([9, ...CHAIN_TOKENS.slice(1)], 4, { seed: '0' }).map(hex);
  other.forEach((h, i) => assert.notEqual(h, CHAIN[i]));
});

test('hashTokenBlocks: chain re-derived independently through npm cbor2', () => {
  // npm cbor2 encodes a Node Buffer through Buffer#toJSON (a map!), so hand it plain Uint8Arrays only.
  const digest = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
  let parent = digest(cbor2Encode('0', { cde: true }));
  const got: string[] = [];
  for (let start = 0; start + 4 <= CHAIN_TOKENS.length; start += 4) {
    const bytes = cbor2Encode([parent, CHAIN_TOKENS.slice(start, start + 4), null], { cde: true });
    parent = digest(bytes);
    got.push(hex(parent));
  }
  assert.deepEqual(got, CHAIN);
  // and npm cbor2 agrees with our encoder on the boundary block and the extra-key shapes
  const wide = [0, 23, 24, 255, 256, 65535, 65536, 4294967295, 4294967296, Number.MAX_SAFE_INTEGER];
  const p32 = new Uint8Array(P32);
  for (const value of [
    [p32, wide, null],
    [p32, [1], ['my-lora', ['mm_hash_a', 7], 'salt', p32]],
  ] as CborValue[]) {
    assert.equal(hex(cbor2Encode(value, { cde: true })), hex(encodeCanonical(value)));
  }
});

test('hashTokenBlocks: extra keys per block, [] treated as None like vLLM', () => {
  const salted = hashTokenBlocks(CHAIN_TOKENS, 4, { seed: '0', extraKeys: (i) => (i === 0 ? ['salt'] : null) });
  const b0 = sha(Buffer.from(`835820${hex(noneHash('0'))}84010203048164${hex(Buffer.from('salt'))}`, 'hex'));
  assert.equal(hex(salted[0]!), b0);
  assert.equal(hex(salted[1]!), hex(hashBlockTokens(salted[0]!, [5, 6, 7, 8], null)));
  assert.notEqual(hex(salted[2]!), CHAIN[2]);
  assert.deepEqual(hashTokenBlocks(CHAIN_TOKENS, 4, { seed: '0', extraKeys: () => [] }).map(hex), CHAIN);
});

test('requestExtraKeys: vLLM 0.33 tagged keys, LoRA on every block, the salt on block 0', () => {
  const keys = requestExtraKeys({ lora: { name: 'ad', path: '/p' }, cacheSalt: 's' });
  // 82 (lora tuple, salt tuple): 83 64 "lora" 62 "ad" 62 "/p", 82 6a "cache_salt" 61 "s"
  assert.equal(
    hex(encodeCanonical(keys(0))),
    '82' + '83646c6f7261626164622f70' + '826a' + hex(Buffer.from('cache_salt')) + '6173',
  );
  assert.equal(hex(encodeCanonical(keys(1))), '81' + '83646c6f7261626164622f70');
  assert.equal(requestExtraKeys({ cacheSalt: 's' })(1), null);
  assert.equal(requestExtraKeys({ cacheSalt: '' })(0), null);
  assert.equal(requestExtraKeys({})(0), null);
});

test('validation: errors name the field and the value', () => {
  const cases: Array<[() => unknown, string]> = [
    [() => hashTokenBlocks([1], 0, { seed: '0' }), 'block-size: expected a positive integer, got 0'],
    [() => hashTokenBlocks([1], 2.5, { seed: '0' }), 'block-size: expected a positive integer, got 2.5'],
    [() => hashTokenBlocks([1], '4' as unknown as number), 'block-size: expected a positive integer, got "4"'],
    [() => hashTokenBlocks([1, -2], 2, { seed: '0' }), 'tokens[1]: expected a non-negative safe integer, got -2'],
    [() => hashTokenBlocks([1, 2.5], 1, { seed: '0' }), 'tokens[1]: expected a non-negative safe integer, got 2.5'],
    [
      () => hashTokenBlocks([2 ** 53], 1, { seed: '0' }),
      'tokens[0]: expected a non-negative safe integer, got 9007199254740992',
    ],
    [
      () => hashTokenBlocks([1], 1, { seed: '0', noneHash: P32 }),
      'none-hash: expected either seed or noneHash, not both',
    ],
    [
      () => hashTokenBlocks([1], 1, { seed: '0', extraKeys: () => [0.5] }),
      'extra-keys[0]: expected a safe integer (floats are not supported), got 0.5',
    ],
    [
      () => hashBlockTokens(Buffer.alloc(0), [1]),
      'parent: expected a non-empty hash (pass noneHash() for block 0), got 0 bytes',
    ],
    [() => hashBlockTokens(P32, []), 'tokens: expected a non-empty array of token ids, got []'],
    [() => hashBlockTokens(P32, [1], 'x' as unknown as null), 'extra-keys: expected an array or null, got "x"'],
  ];
  for (const [fn, message] of cases) {
    assert.throws(
      fn,
      (e: unknown) => e instanceof KvError && e.code === 'INVALID_ARGUMENT' && e.message === message,
      message,
    );
  }
});
