#!/usr/bin/env -S node --max-semi-space-size=32 --min-semi-space-size=32 --initial-old-space-size=256
// The compiled entry point (`npm run build` writes dist/; during development `node --conditions=source --import tsx src/main.ts`).
// The V8 flags above size the collector for a server whose index lives outside the V8 heap: every call leaves a few
// tens of KB of gRPC garbage and almost nothing survives a scavenge, so a scavenge's pause is mostly fixed work per
// young-generation size (its parallel phase and freeing the calls' array buffers). 32 MiB scavenges 2x less often
// than the default 16 MiB with half the pause of 64 MiB; an old generation allowed to reach 256 MiB before its first
// full collection is not marked every few seconds (V8 starts marking whenever the old generation has less room left
// than the young one). `node <this file>` skips them: run the file itself (as npm's bin link, systemd and the
// container do), or pass them to node.
import '../dist/main.js';
