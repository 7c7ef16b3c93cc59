// Pipelined index updates: a node's InsertBlocks and RemoveBlocks in flight on one UpdateBlocksStream (a
// MetaserverStream, which says how the stream follows the leader and fails), answered by id with what the unary
// calls answer. What a node's reporter sends its updates on. A metaserver without the stream (an older version:
// UNIMPLEMENTED) gets the failed updates, and the later ones, as unary calls, until an answer carries another epoch
// (a restarted or new metaserver, perhaps upgraded): then the stream is tried again.
import {
  MetaserverService,
  type UpdateBlocksStreamRequest,
  type UpdateBlocksStreamResponse,
} from '@kvfabric/proto/metaserver';
import { KvError, TIER_DRAM, itemError, tierToWire, toHashList, unpackHashes, type BlockTier } from '@kvfabric/common';
import { MetaserverStream, StreamUnimplemented, type MetaserverStreamOptions } from './metaserver-stream.js';
import {
  MetaserverClient,
  type CallOptions,
  type Hashes,
  type InsertResult,
  type RemoveResult,
} from './metaserver-client.js';

export type BlockUpdateStreamOptions = MetaserverStreamOptions;

const KIND = { method: MetaserverService.updateBlocksStream, name: 'block update stream', call: 'block update' };

/** An answer that is not an error. */
type Done = Exclude<NonNullable<UpdateBlocksStreamResponse['answer']>, { $case: 'error' }>;

export class BlockUpdateStream extends MetaserverStream<UpdateBlocksStreamRequest, UpdateBlocksStreamResponse> {
  /** Unary calls, for a metaserver without the stream; `epoch`: the one it answered with when the stream failed. */
  private fallback: { client: MetaserverClient; epoch: bigint | undefined; active: boolean } | undefined;

  constructor(
    addr: string,
    private readonly opts: BlockUpdateStreamOptions = {},
  ) {
    super(addr, KIND, opts);
  }

  /** Whether updates go as unary calls now (the metaserver did not serve the stream). */
  get unary(): boolean {
    return this.fallback?.active ?? false;
  }

  override close(): void {
    super.close();
    this.fallback?.client.close();
  }

  /** Makes nodeId an owner of each hash, held in `tier` (default DRAM; re-inserting an owned hash sets its tier). */
  async insertBlocks(
    nodeId: string,
    namespace: string,
    hashes: Hashes,
    opts?: CallOptions & { tier?: BlockTier },
  ): Promise<InsertResult> {
    const insert = { nodeId, namespace, hashes: toHashList(hashes), tier: tierToWire(opts?.tier ?? TIER_DRAM) };
    const a = await this.answer(
      (id) => ({ id, update: { $case: 'insert', value: insert } }),
      (c) => c.insertBlocks(nodeId, namespace, insert.hashes, opts),
      opts,
    );
    if (a.$case === 'unary') return a.value;
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
    const a = await this.answer(
      (id) => ({ id, update: { $case: 'remove', value: remove } }),
      (c) => c.removeBlocks(nodeId, namespace, remove.hashes, opts),
      opts,
    );
    if (a.$case === 'unary') return a.value;
    if (a.$case !== 'removed') throw mismatch(a.$case, 'removed');
    return a.value;
  }

  /** An update's answer on the stream, or its unary call's (`$case: 'unary'`); a per-item error thrown. */
  private async answer<U extends { epoch: bigint }>(
    build: (id: number) => UpdateBlocksStreamRequest,
    unary: (client: MetaserverClient) => Promise<U>,
    opts: CallOptions | undefined,
  ): Promise<Done | { $case: 'unary'; value: U }> {
    if (this.fallback?.active) return { $case: 'unary', value: await this.viaUnary(unary) };
    let res: UpdateBlocksStreamResponse;
    try {
      res = await this.call(build, opts);
    } catch (err) {
      if (!(err instanceof StreamUnimplemented)) throw err;
      // its own epochs are this stream's (sawEpoch), not told twice
      const client = new MetaserverClient(this.addr, { ...this.opts, onEpoch: undefined });
      this.fallback ??= { client, epoch: undefined, active: false };
      if (!this.fallback.active) Object.assign(this.fallback, { active: true, epoch: this.lastEpoch });
      return { $case: 'unary', value: await this.viaUnary(unary) };
    }
    const { answer } = res;
    if (answer === undefined) throw mismatch('nothing', 'an answer');
    if (answer.$case === 'error') throw itemError(answer.value);
    this.sawEpoch(answer.value.epoch);
    return answer;
  }

  /** One update as a unary call; an answer under another epoch than the stream's failure sends the next to the stream. */
  private async viaUnary<U extends { epoch: bigint }>(unary: (client: MetaserverClient) => Promise<U>): Promise<U> {
    const fallback = this.fallback!;
    const value = await unary(fallback.client);
    if (fallback.epoch !== undefined && value.epoch !== fallback.epoch) fallback.active = false;
    fallback.epoch ??= value.epoch;
    this.sawEpoch(value.epoch);
    return value;
  }
}

function mismatch(got: string, expected: string): KvError {
  return new KvError('INTERNAL', `${KIND.call}: the metaserver answered ${got}, not ${expected}`);
}
