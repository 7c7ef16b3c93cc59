// A PrepareRead that releases the reader's earlier grants (`release_grant_ids`, how the puller gives a grant window
// back without a ReleaseGrant of its own), against a real node process: the grants listed end before the new one is
// granted, and a list that names anything but live grants of this reader (unknown, another reader's, malformed,
// twice, too many) is refused naming the field and changes nothing: no grant ends, none is made. The same, with the
// same errors, as unary calls and as items of a GrantStream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { startNode, type NodeHandle } from '@kvfabric/testkit';
import { engine, freshHashes, metric, saveBlocks } from './pull-helpers.js';
import { RawReader } from './raw-reader.js';

let node: NodeHandle;

before(async () => {
  node = await startNode({ poolSize: '64mib' });
});

after(async () => {
  await node?.[Symbol.asyncDispose]();
});

const refused = (p: Promise<unknown>, code: grpc.status, message: RegExp) =>
  assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(grpc.status[e.code], grpc.status[code], e.details);
    assert.match(e.details, message);
    return true;
  });

for (const via of ['unary', 'stream'] as const)
  test(`${via}: grants released by the next PrepareRead end before it grants; hostile lists are refused and change nothing`, async () => {
    const ns = `release/prepare/${via}`;
    await using a = await engine(node, ns);
    const hashes = freshHashes(4);
    await saveBlocks(a, hashes);
    const owner = await RawReader.handshake(node, 'owner', via);
    const other = await RawReader.handshake(node, 'other', via);
    try {
      const [g1, g2] = [await owner.prepareRead(ns, hashes), await owner.prepareRead(ns, hashes)];
      const theirs = await other.prepareRead(ns, hashes);
      const active = () => metric(node, 'kvfabric_peer_grants_active');
      const granted = () => metric(node, 'kvfabric_peer_granted_blocks_total');
      assert.equal(await active(), 3);
      const grantedBefore = await granted();

      const unknown = randomBytes(16).toString('hex');
      await refused(
        owner.prepareRead(ns, hashes, undefined, [g1!.id, unknown]),
        grpc.status.NOT_FOUND,
        new RegExp(`^release_grant_ids\\[1\\]: no live grant ${unknown}`),
      );
      await refused(
        owner.prepareRead(ns, hashes, undefined, [g1!.id, theirs.id]),
        grpc.status.PERMISSION_DENIED,
        new RegExp(`^release_grant_ids\\[1\\]: grant ${theirs.id} is another reader's`),
      );
      await refused(
        owner.prepareRead(ns, hashes, undefined, Buffer.alloc(17)),
        grpc.status.INVALID_ARGUMENT,
        /^release_grant_ids: expected grant ids of 16 bytes each, concatenated, got "17 bytes"/,
      );
      await refused(
        owner.prepareRead(ns, hashes, undefined, [g1!.id, g2!.id, g1!.id]),
        grpc.status.INVALID_ARGUMENT,
        /^release_grant_ids\[2\]: a grant id named once/,
      );
      await refused(
        owner.prepareRead(ns, hashes, undefined, randomBytes(16 * 65)),
        grpc.status.INVALID_ARGUMENT,
        /^release_grant_ids: at most 64 grant ids, got 65/,
      );
      // the owner's node id with the other reader's session: not the owner
      await refused(
        other.prepareRead(ns, hashes, owner.session, [g1!.id]),
        grpc.status.NOT_FOUND,
        /^session: peer other has no handshake/,
      );
      assert.equal(await active(), 3, 'no grant ended');
      assert.equal(await granted(), grantedBefore, 'no grant was made');

      // the owner's own two, released by its next PrepareRead, which grants again
      const g3 = await owner.prepareRead(ns, hashes, undefined, [g1!.id, g2!.id]);
      assert.equal(g3.blocks, 4);
      assert.equal(await active(), 2); // g3 and the other reader's
      await refused(owner.release(g1!.id), grpc.status.NOT_FOUND, /^grant_id: no live grant/);
      await owner.release(g3.id);
      await other.release(theirs.id);
      assert.equal(await active(), 0);
    } finally {
      owner.close();
      other.close();
    }
  });
