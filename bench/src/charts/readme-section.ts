// The README parts that `npm run bench:charts` writes: the text between `<!-- NAME:start ... -->` and
// `<!-- NAME:end -->`, nothing else.

export const sectionStart = (name: string) => `<!-- ${name}:start (npm run bench:charts writes this part) -->`;
export const sectionEnd = (name: string) => `<!-- ${name}:end -->`;

/** `readme` with the text of section `name` replaced by `body`; an error if its markers are missing or out of order. */
export function withSection(readme: string, name: string, body: string): string {
  const start = sectionStart(name);
  const end = sectionEnd(name);
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md: no "${start}" ... "${end}" section`);
  if (readme.indexOf(start, a + 1) >= 0) throw new Error(`README.md: "${start}" appears more than once`);
  return `${readme.slice(0, a + start.length)}\n${body}${readme.slice(b)}`;
}
