import { test } from 'node:test';
import assert from 'node:assert/strict';
import { barChart } from './svg-bars.js';

test('one pair of bars per row, ratio and target colour per row', () => {
  const svg = barChart('t <1>', 'GB/s', [
    { label: 'a', kvfabric: 3, reference: 4, target: 0.9 },
    { label: 'b', kvfabric: 5, reference: 4, target: 0.9, ratio: 1.3 },
  ]);
  assert.equal((svg.match(/fill="#2b6cb0"/g) ?? []).length, 3, 'legend + 2 kvfabric bars');
  assert.equal((svg.match(/fill="#a0aec0"/g) ?? []).length, 3, 'legend + 2 reference bars');
  assert.match(svg, /fill="#c53030">0\.75× \(≥ 0\.9\)</);
  assert.match(svg, /fill="#276749">1\.30× \(≥ 0\.9\)</);
  assert.match(svg, /t &lt;1&gt;/);
  // the longest bar spans the whole bar area (420 px)
  assert.match(svg, /width="420" height="14" fill="#2b6cb0"/);
});
