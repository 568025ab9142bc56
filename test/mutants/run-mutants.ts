/**
 * `npm run test:mutants [-- <name>...] [--list]`: applies each mutant of the catalogue, one at a time, to a
 * scratch copy of the working tree, runs the mutant's killer test files there with vitest, and reports
 * whether they failed (killed) or passed (survived). Exit code 1 when a mutant survives or is stale (its
 * search text is not found exactly once), 2 on bad arguments. See docs/mutants.md.
 */
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogue } from './catalogue.js';
import { applyMutant, type Mutant } from './mutant.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** One mutant's test run; past it the run is stopped and counted as a timeout (detected, but suspicious). */
const MUTANT_TIMEOUT_MS = 20 * 60_000;

/**
 * killed: a killer failed, and the same killers pass without the mutant (checked once per set of killers,
 * after the first kill). inconclusive: they fail without the mutant too (a broken or overloaded run).
 */
type Verdict = 'killed' | 'survived' | 'timeout' | 'stale' | 'inconclusive';
type Result = { readonly mutant: Mutant; readonly verdict: Verdict; readonly seconds: number; readonly detail: string };

function usage(): string {
  return [
    'usage: npm run test:mutants [-- [--list] [--keep] [<mutant name>...]]',
    '  --list   print every mutant: name, guarantee, killers',
    '  --keep   keep the scratch copy (its path is printed)',
    'Without names, runs the whole catalogue, one mutant at a time.',
  ].join('\n');
}

function parseArguments(argv: readonly string[]): { list: boolean; keep: boolean; names: string[] } | string {
  const names: string[] = [];
  let list = false;
  let keep = false;
  for (const argument of argv) {
    if (argument === '--list') list = true;
    else if (argument === '--keep') keep = true;
    else if (argument === '--help' || argument === '-h') return usage();
    else if (argument.startsWith('-')) return `unknown option ${argument}\n${usage()}`;
    else names.push(argument);
  }
  return { list, keep, names };
}

/** The working tree as git sees it (tracked and untracked, minus ignored), copied; node_modules linked. */
function copyWorkingTree(): string {
  const scratch = mkdtempSync(path.join(tmpdir(), 'matcha-mutants-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    .toString('utf8')
    .split('\0')
    .filter((file) => file.length > 0);
  for (const file of files) {
    const source = path.join(ROOT, file);
    if (!existsSync(source)) continue; // deleted in the working tree, not yet in the index
    mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true });
    copyFileSync(source, path.join(scratch, file));
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');
  return scratch;
}

/** The vitest run in progress: its process group is killed when the runner is interrupted. */
let running: number | undefined;

function runKillers(scratch: string, killers: readonly string[], logFile: string): Promise<{ code: number | null; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...killers], {
      cwd: scratch,
      env: { ...process.env, NODE_ENV: 'test', NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: vitest, its workers and the role processes the tests spawn, killed together.
      detached: true,
    });
    running = child.pid;
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, MUTANT_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      running = undefined;
      writeFileSync(logFile, Buffer.concat(output));
      resolve({ code, timedOut });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

const ANSI = new RegExp(String.raw`\x1b\[[0-9;]*m`, 'g');

/** The failed tests of a vitest log, for the report; "(timed out)" when every failure was a test timeout. */
function failedTests(log: string): string {
  const text = log.replace(ANSI, '');
  const failed = [
    ...new Set([...text.matchAll(/^ FAIL +(\S+)(?: > (.+)| \[.*\])$/gm)].map(([, file, test]) => test?.trim() ?? `${file} (the whole file)`)),
  ];
  const timeouts = [...text.matchAll(/Error: Test timed out in/g)].length;
  const names = failed.slice(0, 3).join('; ') + (failed.length > 3 ? `; and ${failed.length - 3} more` : '');
  return (timeouts > 0 && timeouts >= failed.length ? '(timed out) ' : '') + names;
}

/** Whether each set of killers passes without any mutant, as found so far. */
const baselines = new Map<string, Promise<boolean>>();

function baselinePasses(scratch: string, logDir: string, killers: readonly string[]): Promise<boolean> {
  const key = killers.join(' ');
  let passes = baselines.get(key);
  if (!passes) {
    const logFile = path.join(logDir, `baseline-${baselines.size + 1}.log`);
    passes = runKillers(scratch, killers, logFile).then(({ code, timedOut }) => code === 0 && !timedOut);
    baselines.set(key, passes);
  }
  return passes;
}

async function runMutant(scratch: string, logDir: string, mutant: Mutant): Promise<Result> {
  const started = performance.now();
  const seconds = () => Math.round((performance.now() - started) / 1000);
  const applied = applyMutant(mutant, (file) => readFileSync(path.join(ROOT, file), 'utf8'));
  if (!applied.ok) return { mutant, verdict: 'stale', seconds: 0, detail: applied.problems.join('; ') };
  const missing = mutant.killers.filter((file) => !existsSync(path.join(ROOT, file)));
  if (missing.length > 0) return { mutant, verdict: 'stale', seconds: 0, detail: `killer files missing: ${missing.join(', ')}` };

  const logFile = path.join(logDir, `${mutant.name}.log`);
  for (const [file, text] of applied.files) writeFileSync(path.join(scratch, file), text);
  let outcome;
  try {
    outcome = await runKillers(scratch, mutant.killers, logFile);
  } finally {
    for (const file of applied.files.keys()) copyFileSync(path.join(ROOT, file), path.join(scratch, file));
  }
  if (outcome.timedOut) return { mutant, verdict: 'timeout', seconds: seconds(), detail: `no answer in ${MUTANT_TIMEOUT_MS / 60_000} min; log ${logFile}` };
  if (outcome.code === 0) return { mutant, verdict: 'survived', seconds: seconds(), detail: `every killer passed; log ${logFile}` };
  const detail = failedTests(readFileSync(logFile, 'utf8')) || `exit code ${outcome.code}; log ${logFile}`;
  if (!(await baselinePasses(scratch, logDir, mutant.killers))) {
    return { mutant, verdict: 'inconclusive', seconds: seconds(), detail: `the killers fail without the mutant too (see baseline logs); ${detail}` };
  }
  return { mutant, verdict: 'killed', seconds: seconds(), detail };
}

async function main(): Promise<number> {
  const parsed = parseArguments(process.argv.slice(2));
  if (typeof parsed === 'string') {
    console.error(parsed);
    return parsed === usage() ? 0 : 2;
  }
  const unknown = parsed.names.filter((name) => !catalogue.some((mutant) => mutant.name === name));
  if (unknown.length > 0) {
    console.error(`no such mutant: ${unknown.join(', ')} (npm run test:mutants -- --list)`);
    return 2;
  }
  // In the order given, so that a long run can put what matters most first.
  const selected = parsed.names.length > 0 ? parsed.names.map((name) => catalogue.find((mutant) => mutant.name === name)!) : catalogue;
  if (parsed.list) {
    for (const mutant of selected) console.log(`${mutant.name}\n  breaks: ${mutant.guarantee}\n  killers: ${mutant.killers.join(', ')}`);
    return 0;
  }

  const stale = selected.flatMap((mutant) => {
    const applied = applyMutant(mutant, (file) => readFileSync(path.join(ROOT, file), 'utf8'));
    return applied.ok ? [] : [`${mutant.name}: ${applied.problems.join('; ')}`];
  });
  if (stale.length > 0) console.error(`STALE MUTANTS (their search text is not in src exactly once; fix the catalogue):\n  ${stale.join('\n  ')}\n`);

  const scratch = copyWorkingTree();
  const logDir = path.join(scratch, '.mutant-logs');
  mkdirSync(logDir);
  console.log(`scratch copy: ${scratch}; ${selected.length} mutant(s), one at a time`);
  const results: Result[] = [];
  try {
    for (const mutant of selected) {
      const result = await runMutant(scratch, logDir, mutant);
      results.push(result);
      console.log(`${result.verdict.padEnd(8)} ${String(result.seconds).padStart(5)} s  ${mutant.name}  ${result.detail}`);
    }
  } finally {
    if (!parsed.keep && results.every((result) => result.verdict === 'killed')) rmSync(scratch, { recursive: true, force: true });
    else console.log(`logs kept in ${logDir}`);
  }

  console.log('\n| mutant | result | seconds | failed tests |\n|---|---|---|---|');
  for (const { mutant, verdict, seconds, detail } of results) {
    console.log(`| \`${mutant.name}\` | ${verdict} | ${seconds} | ${verdict === 'killed' ? detail : ''} |`);
  }
  const failing = results.filter((result) => result.verdict !== 'killed' && result.verdict !== 'timeout');
  console.log(
    `\n${results.length - failing.length} of ${results.length} killed` +
      (failing.length > 0 ? `; not killed: ${failing.map((result) => `${result.mutant.name} (${result.verdict})`).join(', ')}` : ''),
  );
  return failing.length > 0 ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killGroup(running);
    process.exit(130);
  });
}
process.exitCode = await main();
