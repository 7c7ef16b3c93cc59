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
