import { spawn } from 'node:child_process';
import path from 'node:path';
import { forEachLine, waitForExit } from '../../stack/child-process.js';
import { killOnExit } from '../../stack/kill-on-exit.js';
import type { LoadReport } from './run-load.js';

const MAIN = path.resolve(import.meta.dirname, 'main.ts');

/**
 * Runs the load tool as its own process (`main.ts --json`), as an operator would, so the orchestrator's
 * own event loop and memory stay out of the measurement; its progress lines go to our stderr.
 */
export async function runLoadProcess(args: readonly string[]): Promise<LoadReport> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const forget = child.pid === undefined ? () => undefined : killOnExit(child.pid);
  const out: string[] = [];
  forEachLine(child.stdout, (line) => out.push(line));
  forEachLine(child.stderr, (line) => process.stderr.write(`[load] ${line}\n`));
  const status = await waitForExit(child);
  forget();
  const last = out.findLast((line) => line.startsWith('{'));
  if (status.code !== 0 || last === undefined) {
    throw new Error(`the load tool failed (exit ${status.code ?? status.signal}): ${out.join('\n').slice(-2_000)}`);
  }
  return JSON.parse(last) as LoadReport;
}
