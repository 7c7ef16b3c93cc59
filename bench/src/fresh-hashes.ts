// Block hashes no node has seen: a counter, the process id and the time, so concurrent bench processes and repeated
// runs never collide (a collision would turn a measured save into a no-op "already present").
let hashSeq = 0;

export const freshHashes = (n: number): Buffer[] =>
  Array.from({ length: n }, () => {
    const h = Buffer.alloc(32);
    h.writeUInt32LE(hashSeq++, 0);
    h.writeUInt32LE(process.pid, 4);
    h.writeDoubleLE(Date.now(), 8);
    return h;
  });

/** `n` fresh hashes packed back to back in one buffer, the SDK's zero-copy form of a call's hash list. */
export const freshPacked = (n: number): { packed: Buffer; hashLen: number } => ({
  packed: Buffer.concat(freshHashes(n)),
  hashLen: 32,
});
