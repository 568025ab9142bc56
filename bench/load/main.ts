/**
 * The load tool: `npm run bench -- --help`. Human-readable report on stdout, or JSON with `--json` (then
 * progress goes to stderr), which is what `bench:compare` reads.
 */
import { formatLoadReport } from './format-report.js';
import { LOAD_HELP, parseLoadOptions } from './load-options.js';
import { runLoad } from './run-load.js';

let options;
try {
  options = parseLoadOptions(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${LOAD_HELP}\n`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(`${LOAD_HELP}\n`);
  process.exit(0);
}

const json = options.json;
const report = await runLoad(options, (line) => void (json ? process.stderr : process.stdout).write(`${line}\n`));
process.stdout.write(json ? `${JSON.stringify(report)}\n` : `\n${formatLoadReport(report)}\n`);
