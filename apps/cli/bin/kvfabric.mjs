#!/usr/bin/env node
// Runs the TypeScript entry point through tsx (dev against source; no separate build step).
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
