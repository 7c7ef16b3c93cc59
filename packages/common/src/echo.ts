// Bad values are echoed in error messages cut short. An error names the field and shows the value so an operator can
// find it, but never carries the whole input back: a 128 KiB id echoed into a gRPC status would make the answer as
// large as the attack (grpc-js then fails the whole channel on the oversized trailer), and rendering a deeply nested
// value recursively (JSON.stringify) overflows the stack. Every message that shows caller input goes through `echo`;
// `clip` bounds whole messages as a backstop (KvError applies it to every message).

/** Characters of a string value shown in an error message; the rest is counted, not shown. */
export const ECHO_MAX_CHARS = 64;

/** Characters of a whole error message; longer ones are cut with the count of what was left out. */
export const ERROR_MESSAGE_MAX_CHARS = 4096;

/** Arrays of at most this many primitive items are shown item by item; others by their length. */
const ECHO_MAX_ITEMS = 8;

/**
 * A short rendering of a value for an error message: strings quoted (the first ECHO_MAX_CHARS characters, then how
 * many there were), numbers and other primitives as written, short flat arrays item by item, byte arrays and other
 * arrays by their length, objects by kind. Never recursive, never longer than a few thousand characters.
 */
export function echo(value: unknown, maxChars = ECHO_MAX_CHARS): string {
  if (typeof value === 'string') {
    if (value.length <= maxChars) return JSON.stringify(value);
    return `${JSON.stringify(value.slice(0, maxChars))}… (${value.length} characters)`;
  }
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (ArrayBuffer.isView(value)) return `${value.byteLength} bytes`;
  if (Array.isArray(value)) {
    const flat = value.length <= ECHO_MAX_ITEMS && value.every((v) => v === null || typeof v !== 'object');
    return flat ? `[${value.map((v) => echo(v, maxChars)).join(',')}]` : `an array of ${value.length} items`;
  }
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

/** text, cut to at most maxChars characters (plus a note of how long it was). */
export function clip(text: string, maxChars = ERROR_MESSAGE_MAX_CHARS): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)}… (${text.length} characters)`;
}
