import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The client runs in a browser: its sources typecheck with lib ES2022 + DOM and no @types/node
 * (client/tsconfig.build.json, `types: []`), so a Node-only API (`node:` imports, Buffer, process) is a
 * type error there. Its unit tests and test doubles typecheck with the same settings (client/tsconfig.json).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

function tsc(project: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [TSC, '--noEmit', '-p', project], { cwd: ROOT, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('the client is browser-only code', () => {
  it('typechecks without Node types (lib ES2022 + DOM, types: [])', () => {
    const build = tsc('client/tsconfig.build.json');
    expect(build.output).toBe('');
    expect(build.status).toBe(0);
    const all = tsc('client/tsconfig.json');
    expect(all.output).toBe('');
    expect(all.status).toBe(0);
  }, 120_000);

  it('has no Node module imports in its sources', () => {
    const sources = readdirSync(path.join(ROOT, 'client/src')).filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'));
    expect(sources.length).toBeGreaterThan(5);
    for (const name of sources) {
      const text = readFileSync(path.join(ROOT, 'client/src', name), 'utf8');
      expect(text, name).not.toMatch(/from ['"]node:|require\(|\bBuffer\b|\bprocess\./);
    }
  });
});
