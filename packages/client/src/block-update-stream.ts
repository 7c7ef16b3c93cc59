// Pipelined index updates: a node's InsertBlocks and RemoveBlocks in flight on one UpdateBlocksStream (a
// MetaserverStream, which says how the stream follows the leader and fails), answered by id with what the unary
// calls answer. What a node's reporter sends its updates on.
import {
  MetaserverService,
  type UpdateBlocksStreamRequest,
  type UpdateBlocksStreamResponse,
} from '@kvfabric/proto/metaserver';
import { KvError, TIER_DRAM, tierToWire, toHashList, unpackHashes, type BlockTier } from '@kvfabric/common';
import { MetaserverStream, itemFailure, type MetaserverStreamOptions } from './metaserver-stream.js';
import type { CallOptions, Hashes, InsertResult, RemoveResult } from './metaserver-client.js';

export type BlockUpdateStreamOptions = MetaserverStreamOptions;

const KIND = { method: MetaserverService.updateBlocksStream, name: 'block update stream', call: 'block update' };

/** An answer that is not an error. */
type Done = Exclude<NonNullable<UpdateBlocksStreamResponse['answer']>, { $case: 'error' }>;

export class BlockUpdateStream extends MetaserverStream<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse> {
  constructor(addr: string, opts: BlockUpdateStreamOptions = {}) {
    super(addr, KIND, opts);
  }

  /** Makes nodeId an owner of each hash, held in `tier` (default DRAM; re-inserting an owned hash sets its tier). */
  async insertBlocks(
    nodeId: string,
    namespace: string,
    hashes: Hashes,
    opts?: CallOptions & { tier?: BlockTier },
  ): Promise<InsertResult> {
    const insert = { nodeId, namespace, hashes: toHashList(hashes), tier: tierToWire(opts?.tier ?? TIER_DRAM) };
    const a = await this.answer((id) => ({ id, update: { $case: 'insert', value: insert } }), opts);
    if (a.$case !== 'inserted') throw mismatch(a.$case, 'inserted');
    return {
      epoch: a.value.epoch,
      inserted: a.value.inserted,
      reclaimable: a.value.reclaimable ? unpackHashes(a.value.reclaimable) : [],
    };
  }

  /** Removes nodeId's ownership of each hash (other owners are untouched). */
  async removeBlocks(nodeId: string, namespace: string, hashes: Hashes, opts?: CallOptions): Promise<RemoveResult> {
    const remove = { nodeId, namespace, hashes: toHashList(hashes) };
    const a = await this.answer((id) => ({ id, update: { $case: 'remove', value: remove } }), opts);
    if (a.$case !== 'removed') throw mismatch(a.$case, 'removed');
    return a.value;
  }

  /** An update's answer; a per-item error thrown. */
  private async answer(build: (id: number) => UpdateBlocksStreamRequest, opts: CallOptions | undefined): Promise<Done> {
    const { answer } = await this.call(build, opts);
    if (answer === undefined) throw mismatch('nothing', 'an answer');
    if (answer.$case === 'error') throw itemFailure(answer.value);
    this.sawEpoch(answer.value.epoch);
    return answer;
  }
}

function mismatch(got: string, expected: string): KvError {
  return new KvError('INTERNAL', `${KIND.call}: the metaserver answered ${got}, not ${expected}`);
}
