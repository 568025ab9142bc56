/**
 * The same ASCII text as one flat string. V8 keeps a string built by concatenation (a template literal, or
 * the `ulid` package adding one character at a time) as a tree of cons strings, 32 bytes each, until
 * something reads it whole; for a string held as long as a socket is open (its request id, its user's
 * subscription subject) that is 100 to 200 bytes per socket (docs/benchmarks.md, issue 17).
 */
export function flatString(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}
