#!/usr/bin/env node
// The shipped entry point: the bundled CLI with its build-time code cache (`npm run build` writes both into dist/).
'use strict';
require('../dist/bundle/load.cjs').loadCli().exports.main();
