// Message limits on the node's engine API (issue 12: "every server accepts 256 MiB messages"), against a real
// kvfabric-node: a call carries at most ENGINE_MAX_CALL_BLOCKS hashes (more are refused naming the field), the
// server takes at most ENGINE_MAX_REQUEST_BYTES (a larger message is refused before it is decoded), and the
// connection serves the next call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { EngineClient } from '@kvfabric/proto/node';
import { ENGINE_MAX_CALL_BLOCKS, ENGINE_MAX_REQUEST_BYTES, type KvError } from '@kvfabric/common';
import { KvEngine, KvRegion } from '@kvfabric/client';
import { startNode } from '@kvfabric/testkit';

function saveRequest(instanceId: string, count: number, hashLen: number) {
  const packed = Buffer.alloc(count * hashLen);
  for (let i = 0; i < count; i++) packed.writeUInt32BE(i, i * hashLen);
  return { instanceId, blockIds: Buffer.alloc(count * 4, 0xff), hashes: { packed, hashLen } };
}

test('engine API: at most ENGINE_MAX_CALL_BLOCKS hashes a call, messages held to the real maximum', async () => {
  await using node = await startNode({ poolSize: '16mib' });
  const region = KvRegion.create({ layout: { numLayers: 1, kvSplit: false, bytesPerLayerBlock: 4096, numBlocks: 8 } });
  const kv = await KvEngine.register({ target: node.engineSocket, namespace: 'limits', region, instanceId: 'e' });
  const save = async (count: number, hashLen: number) => {
    try {
      await kv.conn.call('save', saveRequest('e', count, hashLen));
    } catch (err) {
      return err as KvError;
    }
    assert.fail('save unexpectedly succeeded');
  };
  try {
    // the largest valid call decodes and reaches the save path (whose own checks refuse these block ids)
    const largest = await save(ENGINE_MAX_CALL_BLOCKS, 64);
    assert.equal(largest.code, 'INVALID_ARGUMENT');
    assert.match(largest.message, /^block_ids\[0\]: expected 0\.\.7/);
    const over = await save(ENGINE_MAX_CALL_BLOCKS + 1, 8);
    assert.equal(over.code, 'INVALID_ARGUMENT');
    assert.equal(
      over.message,
      `hashes: expected at most ${ENGINE_MAX_CALL_BLOCKS} hashes, got ${ENGINE_MAX_CALL_BLOCKS + 1}`,
    );
    // a message past the maximum: the SDK does not send it, and the server refuses it before decoding it
    const count = Math.ceil((ENGINE_MAX_REQUEST_BYTES + (1 << 20)) / 68);
    const unsent = await save(count, 64);
    assert.equal(unsent.code, 'QUOTA_EXCEEDED');
    assert.match(unsent.message, /larger than/);
    const raw = new EngineClient(`unix:${node.engineSocket}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
    });
    const big = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.save(saveRequest('e', count, 64), (err) => resolve(err)),
    );
    raw.close();
    assert.equal(big?.code, grpc.status.RESOURCE_EXHAUSTED, big?.details);
    assert.match(big.details, /larger than max/);
    // and the connection goes on
    region.writeBlock(0, Buffer.alloc(region.geometry.blockBytes, 3));
    assert.equal((await kv.save([0], [Buffer.alloc(32, 1)])).stored, 1);
  } finally {
    await kv.close();
    region.close();
  }
});
