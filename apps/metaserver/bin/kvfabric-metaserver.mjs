#!/usr/bin/env node
// The compiled entry point (`npm run build` writes dist/; during development `node --conditions=source --import tsx src/main.ts`).
import '../dist/main.js';
