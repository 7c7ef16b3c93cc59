// The Redis reference peer: the incremental RESP parser, a private redis-server and the pipelining client, on exact replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RedisError, RespClient, RespParser, startRedis, usedMemory, type Reply } from './redis.js';

const WIRE = Buffer.from(
  '+OK\r\n-ERR bad\r\n:42\r\n:-7\r\n$3\r\nabc\r\n$0\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n:7\r\n*0\r\n*-1\r\n*2\r\n*1\r\n$2\r\n\r\n\r\n+z\r\n',
);

function parseAll(chunks: Buffer[]): Reply[] {
  const out: Reply[] = [];
  const p = new RespParser((r) => out.push(r));
  for (const c of chunks) p.feed(c);
  return out;
}

function checkWire(replies: Reply[], where: string): void {
  assert.equal(replies.length, 11, where);
  assert.equal(replies[0], 'OK', where);
  assert.ok(replies[1] instanceof RedisError && replies[1].message === 'ERR bad', where);
  assert.deepEqual(replies.slice(2, 4), [42, -7], where);
  assert.deepEqual(replies[4], Buffer.from('abc'), where);
  assert.deepEqual(replies[5], Buffer.alloc(0), where);
  assert.equal(replies[6], null, where);
  assert.deepEqual(replies[7], [Buffer.from('x'), 7], where);
  assert.deepEqual(replies.slice(8), [[], null, [[Buffer.from('\r\n')], 'z']], where);
}

test('RespParser: every RESP2 type, bulk strings as Buffers, with the wire split at every byte (twice)', () => {
  checkWire(parseAll([WIRE]), 'one chunk');
  checkWire(parseAll([...WIRE].map((b) => Buffer.of(b))), 'byte by byte');
  for (let i = 0; i <= WIRE.length; i++) {
    for (let j = i; j <= WIRE.length; j += 7)
      checkWire(parseAll([WIRE.subarray(0, i), WIRE.subarray(i, j), WIRE.subarray(j)]), `split at ${i}, ${j}`);
  }
  assert.throws(() => parseAll([Buffer.from('?x\r\n')]), RedisError);
});

test('RespParser: a bulk string inside a chunk is a view of it; one spanning chunks arrives whole and exact', () => {
  const value = randomBytes(3 * 65536 + 11);
  const wire = Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n$2\r\nhi\r\n')]);
  const inOne = parseAll([wire]);
  assert.equal((inOne[0] as Buffer).buffer, wire.buffer, 'no copy within one chunk');
  for (const size of [1, 2, 1000, 65536]) {
    const chunks: Buffer[] = [];
    for (let o = 0; o < wire.length; o += size) chunks.push(wire.subarray(o, o + size));
    const got = parseAll(chunks);
    assert.equal(got.length, 2, `chunks of ${size}`);
    assert.ok((got[0] as Buffer).equals(value), `chunks of ${size}`);
    assert.deepEqual(got[1], Buffer.from('hi'));
  }
});

test('a private redis-server on loopback: pipelined SADD/SMEMBERS with binary keys, INFO memory', async () => {
  await using redis = await startRedis();
  assert.equal(redis.host, '127.0.0.1');
  const client = await RespClient.connect(redis.host, redis.port);
  try {
    const key = Buffer.from([0, 1, 2, 13, 10, 255]);
    const before = await usedMemory(client);
    const cmds = Array.from({ length: 1000 }, (_, i) => [
      'SADD',
      Buffer.concat([key, Buffer.from([i >> 8, i & 255])]),
      String(i % 3),
    ]);
    const replies = await client.pipeline(cmds);
    assert.equal(replies.length, 1000);
    assert.ok(replies.every((r) => r === 1));
    assert.deepEqual(
      await client.pipeline([['SADD', Buffer.concat([key, Buffer.from([0, 0])]), '2'], ['DBSIZE']]),
      [1, 1000],
    );
    const [members, missing] = await client.pipeline([
      ['SMEMBERS', Buffer.concat([key, Buffer.from([0, 0])])],
      ['SMEMBERS', 'nope'],
    ]);
    assert.deepEqual((members as Buffer[]).map(String).sort(), ['0', '2']);
    assert.deepEqual(missing, []);
    assert.ok((await usedMemory(client)) > before);
    const [err] = await client.pipeline([['NOSUCHCOMMAND']]);
    assert.ok(err instanceof RedisError);
    // large binary values round-trip exactly, pipelined (they span many socket reads)
    const big = [randomBytes(5 << 20), randomBytes(300_000), Buffer.alloc(0)];
    assert.deepEqual(await client.pipeline(big.map((v, i) => ['SET', `big:${i}`, v])), ['OK', 'OK', 'OK']);
    const back = await client.pipeline([...big.map((_, i) => ['GET', `big:${i}`]), ['GET', 'big:none']]);
    big.forEach((v, i) => assert.ok(Buffer.isBuffer(back[i]) && (back[i] as Buffer).equals(v), `value ${i}`));
    assert.equal(back[3], null);
  } finally {
    client.close();
  }
  await redis.stop();
  assert.notEqual(redis.proc.exitCode ?? redis.proc.signalCode, null);
});
