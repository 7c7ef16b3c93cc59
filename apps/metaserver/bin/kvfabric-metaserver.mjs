#!/usr/bin/env -S node --max-semi-space-size=4 --min-semi-space-size=4 --initial-old-space-size=256 --no-parallel-scavenge
// The compiled entry point (`npm run build` writes dist/; during development `node --conditions=source --import tsx src/main.ts`).
// The V8 flags above size the collector for a server whose index lives outside the V8 heap: a pipelined query's
// garbage (gRPC frames, array buffers) is dead by the next scavenge, so a scavenge has little to copy and its pause
// is mostly fixed work. A fixed 4 MiB young generation keeps each pause short (p99 0.9-1.7 ms under the metaserver
// bench on 2 shared cores, 2.5 ms at 16 MiB; the metaserver README has the runs); scavenging on the JavaScript
// thread alone (--no-parallel-scavenge) spares it waiting to start and join helper tasks, which on a host whose cores
// are busy (the metaserver beside etcd, its clients or other services) is most of a parallel scavenge's pause; an old
// generation allowed to reach 256 MiB before its first full collection is not marked every few seconds (V8 starts
// marking whenever the old generation has less room left than the young one). `node <this file>` skips them: run
// the file itself (as npm's bin link, systemd and the container do), or pass them to node.
import '../dist/main.js';
