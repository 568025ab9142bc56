/**
 * Splits a SQL script into its statements at the semicolons that end them: those outside quoted strings
 * ('…', E'…', "…"), dollar-quoted bodies ($$…$$, $tag$…$tag$) and comments. Statements are trimmed; empty
 * ones and comment-only ones are dropped.
 */
export function splitSqlStatements(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let meaningful = false;
  let i = 0;
  while (i < script.length) {
    const char = script[i]!;
    const next = script[i + 1];
    if (char === '-' && next === '-') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? script.length : end + 1;
    } else if (char === '/' && next === '*') {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? script.length : end + 2;
    } else if (char === "'" || char === '"') {
      i = endOfQuoted(script, i, char);
      meaningful = true;
    } else if (char === '$' && /^\$[A-Za-z_]?[A-Za-z0-9_]*\$/.test(script.slice(i, i + 64))) {
      const tag = /^\$[A-Za-z_]?[A-Za-z0-9_]*\$/.exec(script.slice(i, i + 64))![0];
      const end = script.indexOf(tag, i + tag.length);
      i = end === -1 ? script.length : end + tag.length;
      meaningful = true;
    } else if (char === ';') {
      if (meaningful) statements.push(script.slice(start, i).trim());
      start = i + 1;
      meaningful = false;
      i += 1;
    } else {
      if (!/\s/.test(char)) meaningful = true;
      i += 1;
    }
  }
  if (meaningful) statements.push(script.slice(start).trim());
  return statements;
}

/** The index after the quote that closes the one at `open`; a doubled quote is part of the text. */
function endOfQuoted(script: string, open: number, quote: string): number {
  let i = open + 1;
  while (i < script.length) {
    if (script[i] === quote) {
      if (script[i + 1] === quote) i += 2;
      else return i + 1;
    } else if (script[i] === '\\' && quote === "'" && isEscapeString(script, open)) {
      i += 2;
    } else {
      i += 1;
    }
  }
  return script.length;
}

function isEscapeString(script: string, open: number): boolean {
  const before = script[open - 1];
  return (before === 'E' || before === 'e') && !/[A-Za-z0-9_]/.test(script[open - 2] ?? ' ');
}
