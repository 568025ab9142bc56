import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { catalogue } from './catalogue.js';
import { applyEdit, applyMutant } from './mutant.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

describe('applyEdit', () => {
  const edit = { file: 'f.ts', search: 'a < b', replace: 'a <= b' };

  it('replaces the one occurrence of the search text', () => {
    expect(applyEdit('if (a < b) x();', edit)).toEqual({ ok: true, text: 'if (a <= b) x();' });
  });

  it('refuses a search text that is missing, repeated, empty or equal to its replacement', () => {
    expect(applyEdit('if (a > b) x();', edit)).toMatchObject({ ok: false, problem: expect.stringContaining('not found') as string });
    expect(applyEdit('a < b; a < b;', edit)).toMatchObject({ ok: false, problem: expect.stringContaining('more than once') as string });
    expect(applyEdit('x', { ...edit, search: '' })).toMatchObject({ ok: false, problem: expect.stringContaining('empty') as string });
    expect(applyEdit('a < b', { ...edit, replace: 'a < b' })).toMatchObject({ ok: false });
  });

  it('applies two edits of one file in order, each seeing the other\'s result', () => {
    const files = { 'f.ts': 'one two' };
    const outcome = applyMutant(
      {
        name: 'm',
        guarantee: 'g',
        killers: [],
        edits: [
          { file: 'f.ts', search: 'one', replace: 'three' },
          { file: 'f.ts', search: 'three two', replace: 'four' },
        ],
      },
      (file) => files[file as keyof typeof files],
    );
    expect(outcome).toEqual({ ok: true, files: new Map([['f.ts', 'four']]) });
  });
});

// The runner refuses a stale mutant; this keeps the catalogue in step with src/ (and stack/) in every `npm test`.
describe('the mutant catalogue', () => {
  it('names each mutant once, in kebab-case, with a guarantee and killers that exist', () => {
    const names = catalogue.map((mutant) => mutant.name);
    expect(new Set(names).size).toBe(names.length);
    for (const mutant of catalogue) {
      expect(mutant.name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(mutant.guarantee.length).toBeGreaterThan(10);
      expect(mutant.killers.length, mutant.name).toBeGreaterThan(0);
      for (const killer of mutant.killers) expect(existsSync(path.join(ROOT, killer)), `${mutant.name}: ${killer}`).toBe(true);
    }
  });

  it.each(catalogue.map((mutant) => [mutant.name, mutant] as const))(
    '%s applies to the code exactly once and leaves code that parses',
    (_, mutant) => {
      const outcome = applyMutant(mutant, read);
      expect(outcome.ok ? [] : outcome.problems).toEqual([]);
      if (!outcome.ok) return;
      for (const [file, text] of outcome.files) {
        expect(file).toMatch(/^(src|stack)\//);
        const { diagnostics } = ts.transpileModule(text, { fileName: file, reportDiagnostics: true });
        expect(diagnostics?.map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')) ?? [], file).toEqual([]);
      }
    },
  );
});
