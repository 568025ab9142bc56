import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * client/src/openapi-types.ts is generated from docs/openapi.yaml by openapi-typescript and checked in, so
 * the client builds without it. When the document changes, this fails until the file is generated again:
 * `cd client && npm run generate:rest-types`.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'openapi-types-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the REST types generated from docs/openapi.yaml', () => {
  it('are up to date with the document', () => {
    const output = path.join(work, 'openapi-types.ts');
    const cli = path.join(ROOT, 'node_modules/openapi-typescript/bin/cli.js');
    const result = spawnSync(process.execPath, [cli, path.join(ROOT, 'docs/openapi.yaml'), '-o', output], { cwd: path.join(ROOT, 'client'), encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const checkedIn = readFileSync(path.join(ROOT, 'client/src/openapi-types.ts'), 'utf8');
    expect(checkedIn, 'client/src/openapi-types.ts is stale: run `npm run generate:rest-types` in client/').toBe(readFileSync(output, 'utf8'));
  }, 60_000);
});
