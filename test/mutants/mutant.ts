/**
 * A mutant: a small, named change to `src/` (or `stack/`, what `npm start` runs) that breaks one guarantee,
 * and the test files that must fail when it is applied. Each edit is an exact search text and its
 * replacement rather than a patch, so that a mutant survives unrelated edits of its file; a search text found
 * other than exactly once makes the mutant stale, and the runner refuses it.
 */
export type MutantEdit = {
  /** Path from the repository root (under `src/` or `stack/`). */
  readonly file: string;
  readonly search: string;
  readonly replace: string;
};

export type Mutant = {
  /** kebab-case, what the mutant does: `relay-forgets-checkpoint`. */
  readonly name: string;
  /** The guarantee it breaks, in one line (as README.md or docs/ state it). */
  readonly guarantee: string;
  readonly edits: readonly MutantEdit[];
  /** Test files (from the repository root) of which at least one must fail with the mutant applied. */
  readonly killers: readonly string[];
};

export type EditOutcome = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly problem: string };

/** Applies one edit to a file's text: the search text must occur exactly once. */
export function applyEdit(text: string, edit: MutantEdit): EditOutcome {
  const first = text.indexOf(edit.search);
  if (edit.search.length === 0) return { ok: false, problem: `${edit.file}: empty search text` };
  if (first === -1) return { ok: false, problem: `${edit.file}: search text not found: ${JSON.stringify(edit.search)}` };
  if (text.indexOf(edit.search, first + 1) !== -1) {
    return { ok: false, problem: `${edit.file}: search text found more than once: ${JSON.stringify(edit.search)}` };
  }
  if (edit.search === edit.replace) return { ok: false, problem: `${edit.file}: replacement equals the search text` };
  return { ok: true, text: text.slice(0, first) + edit.replace + text.slice(first + edit.search.length) };
}

/**
 * Applies every edit of a mutant to the files `read` gives, in order (two edits of one file see each
 * other's result). Returns the new text of each file, or every problem found.
 */
export function applyMutant(
  mutant: Mutant,
  read: (file: string) => string,
): { readonly ok: true; readonly files: ReadonlyMap<string, string> } | { readonly ok: false; readonly problems: readonly string[] } {
  const files = new Map<string, string>();
  const problems: string[] = [];
  for (const edit of mutant.edits) {
    const outcome = applyEdit(files.get(edit.file) ?? read(edit.file), edit);
    if (outcome.ok) files.set(edit.file, outcome.text);
    else problems.push(outcome.problem);
  }
  if (mutant.edits.length === 0) problems.push('no edits');
  return problems.length === 0 ? { ok: true, files } : { ok: false, problems };
}
