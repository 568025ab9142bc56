/** The last lines a server printed, kept quietly so that a failed start can say why. */
export class LogTail {
  readonly #lines: string[] = [];

  constructor(private readonly size = 40) {}

  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.size) this.#lines.shift();
  }

  toString(): string {
    return this.#lines.join('\n');
  }
}
