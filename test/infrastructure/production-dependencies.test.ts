import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The image (Dockerfile) installs `dependencies` only (`npm ci --omit=dev`) and runs each role as
 * `node --import tsx src/<role>/main.ts`. What it loads must therefore be a production dependency; a
 * devDependency there leaves every container failing at start with ERR_MODULE_NOT_FOUND, which no test run
 * with the full node_modules would show. Docker cannot run here, so this checks the same thing from the files.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const production = new Set(Object.keys(manifest.dependencies));

/** `hono/cors` -> `hono`, `@hono/node-server/x` -> `@hono/node-server`. */
const packageOf = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

describe('what the production image runs', () => {
  it('preloads only production dependencies in its commands (Dockerfile, docker-compose.yml)', () => {
    const commands = ['Dockerfile', 'docker-compose.yml'].map((file) => readFileSync(path.join(ROOT, file), 'utf8')).join('\n');
    const preloaded = [...commands.matchAll(/"--import",\s*"([^"]+)"/g)].map((match) => match[1]!);
    expect(preloaded.length).toBeGreaterThan(0);
    expect(preloaded.filter((name) => !production.has(packageOf(name)))).toEqual([]);
  });

  it('imports at run time only production dependencies from src/ (the npm start launcher lives in stack/)', () => {
    const runtime = sourceFiles(path.join(ROOT, 'src'));
    const missing = new Set<string>();
    for (const file of runtime) {
      const text = readFileSync(file, 'utf8');
      // Type-only imports vanish when tsx strips the types.
      for (const match of text.matchAll(/^import (?!type )[^;]*? from '([^'.][^']*)'/gm)) {
        const name = packageOf(match[1]!);
        if (!name.startsWith('node:') && !production.has(name)) missing.add(`${name} (${path.relative(ROOT, file)})`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
