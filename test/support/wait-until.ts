import { sleep } from '../../src/shared/sleep.js';

/** Polls `condition` every `intervalMs` until it holds. @throws when `timeoutMs` passes first, naming `what`. */
export async function waitUntil(
  what: string,
  condition: () => Promise<boolean>,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(options.intervalMs ?? 200);
  }
}
