// An engine in its own process for the "engine killed" test: registers, saves 4 blocks, holds a lease,
// prints "ready", then waits to be killed.
import { randomBytes } from 'node:crypto';
import { KvEngine, KvRegion } from '@kvfabric/client';

const socket = process.argv[2]!;
const region = KvRegion.create({ layout: { numLayers: 2, kvSplit: true, bytesPerLayerBlock: 1024, numBlocks: 8 } });
const kv = await KvEngine.register({ target: socket, namespace: 'child', region });
const hashes = [0, 1, 2, 3].map((i) => Buffer.from(`child-${i}`.padEnd(16, '.')));
for (let b = 0; b < 4; b++) region.writeBlock(b, randomBytes(region.geometry.blockBytes));
await kv.save([0, 1, 2, 3], hashes);
const q = await kv.query(hashes);
if (q.hits !== 4) throw new Error(`expected 4 hits, got ${q.hits}`);
process.stdout.write('ready\n');
setInterval(() => {}, 1 << 30);
