import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sectionEnd, sectionStart, withSection } from './readme-section.js';

test('only the marked README section is replaced; the other sections and the text around stay', () => {
  assert.equal(sectionStart('perf-table'), '<!-- perf-table:start (npm run bench:charts writes this part) -->');
  assert.equal(sectionEnd('perf-table'), '<!-- perf-table:end -->');
  const perf = `${sectionStart('perf-table')}\nold perf\n${sectionEnd('perf-table')}`;
  const cap = `${sectionStart('capacity-table')}\nold capacity\nrows\n${sectionEnd('capacity-table')}`;
  const readme = `intro\n${perf}\nmiddle\n${cap}\noutro\n`;
  const once = withSection(readme, 'perf-table', 'new perf\n');
  assert.equal(
    once,
    `intro\n${sectionStart('perf-table')}\nnew perf\n${sectionEnd('perf-table')}\nmiddle\n${cap}\noutro\n`,
  );
  const twice = withSection(once, 'capacity-table', 'new capacity\n');
  assert.equal(
    twice,
    `intro\n${sectionStart('perf-table')}\nnew perf\n${sectionEnd('perf-table')}\nmiddle\n` +
      `${sectionStart('capacity-table')}\nnew capacity\n${sectionEnd('capacity-table')}\noutro\n`,
  );
  // Writing the same body again changes nothing.
  assert.equal(withSection(twice, 'capacity-table', 'new capacity\n'), twice);
});

test('a README without the markers, with them reversed or with a start marker twice is refused', () => {
  assert.throws(() => withSection('no markers', 'capacity-table', 'x'), /README\.md: no "<!-- capacity-table:start/);
  const start = sectionStart('perf-table');
  const end = sectionEnd('perf-table');
  assert.throws(() => withSection(`${start}\n`, 'perf-table', 'x'), /README\.md: no "<!-- perf-table:start/);
  assert.throws(() => withSection(`${end}\n${start}\n`, 'perf-table', 'x'), /README\.md: no "<!-- perf-table:start/);
  assert.throws(() => withSection(`${start}\n${end}\n${start}\n${end}\n`, 'perf-table', 'x'), /appears more than once/);
  // The capacity markers do not stand in for the performance table's.
  const cap = `${sectionStart('capacity-table')}\n${sectionEnd('capacity-table')}\n`;
  assert.throws(() => withSection(cap, 'perf-table', 'x'), /no "<!-- perf-table:start/);
});
