// The Redis reference peer: a private redis-server and the pipelining RESP client, on exact replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisError, RespClient, parseReply, startRedis, usedMemory } from './redis.js';

test('parseReply: every RESP2 type, and undefined until a reply is complete', () => {
  const wire = Buffer.from('+OK\r\n-ERR bad\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n:7\r\n*0\r\n');
  const values: unknown[] = [];
  for (let off = 0; off < wire.length;) {
    const r = parseReply(wire, off)!;
    values.push(r.value);
    off = r.end;
  }
  assert.equal(values[0], 'OK');
  assert.ok(values[1] instanceof RedisError && values[1].message === 'ERR bad');
  assert.deepEqual(values.slice(2), [42, 'abc', null, ['x', 7], []]);
  for (let cut = 1; cut < 14; cut++) assert.equal(parseReply(Buffer.from('*2\r\n$1\r\nx\r\n:7\r\n').subarray(0, cut), 0), undefined, `cut ${cut}`);
});

test('a private redis-server on loopback: pipelined SADD/SMEMBERS with binary keys, INFO memory', async () => {
  await using redis = await startRedis();
  assert.equal(redis.host, '127.0.0.1');
  const client = await RespClient.connect(redis.host, redis.port);
  try {
    const key = Buffer.from([0, 1, 2, 13, 10, 255]);
    const before = await usedMemory(client);
    const cmds = Array.from({ length: 1000 }, (_, i) => ['SADD', Buffer.concat([key, Buffer.from([i >> 8, i & 255])]), String(i % 3)]);
    const replies = await client.pipeline(cmds);
    assert.equal(replies.length, 1000);
    assert.ok(replies.every((r) => r === 1));
    assert.deepEqual(await client.pipeline([['SADD', Buffer.concat([key, Buffer.from([0, 0])]), '2'], ['DBSIZE']]), [1, 1000]);
    const [members, missing] = await client.pipeline([['SMEMBERS', Buffer.concat([key, Buffer.from([0, 0])])], ['SMEMBERS', 'nope']]);
    assert.deepEqual((members as string[]).sort(), ['0', '2']);
    assert.deepEqual(missing, []);
    assert.ok((await usedMemory(client)) > before);
    const [err] = await client.pipeline([['NOSUCHCOMMAND']]);
    assert.ok(err instanceof RedisError);
  } finally {
    client.close();
  }
  await redis.stop();
  assert.notEqual(redis.proc.exitCode ?? redis.proc.signalCode, null);
});
