const COLOURS = [36, 33, 35, 32, 34, 91, 96, 93];
let next = 0;

/** A `[name]` prefix for interleaved output, coloured only when writing to a terminal. */
export function lineTag(name: string, stream: NodeJS.WriteStream = process.stdout): string {
  const colour = COLOURS[next++ % COLOURS.length] ?? 36;
  return stream.isTTY ? `\u001b[${colour}m[${name}]\u001b[0m` : `[${name}]`;
}
