import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { describeDifferences } from './compare-tables.js';
import { createProgress } from './progress.js';
import { rebuildProjection, ReplayBusyError } from './rebuild-projection.js';
import { parseReplayArguments, REPLAY_HELP } from './replay-arguments.js';

// The replay CLI: `npm run replay -- --help`. Human-readable output: results on stdout, progress on stderr.

let args;
try {
  args = parseReplayArguments(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n\n${REPLAY_HELP}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${REPLAY_HELP}\n`);
  process.exit(0);
}

const config = loadConfig(configSchemas.replay);
const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const say = (line: string) => process.stdout.write(`${line}\n`);

let exitCode = 0;
try {
  for (const projection of args.projections) {
    const result = await rebuildProjection(
      { pool, progress: (label) => createProgress({ label, stream: process.stderr }) },
      { projection, ...args },
    );
    const rate = result.seconds > 0 ? Math.round(result.events / result.seconds) : result.events;
    say(
      `${projection}: generation ${result.generation} ${result.resumed ? 'resumed and ' : ''}built from ` +
        `${result.events} events in ${result.seconds.toFixed(1)} s (${rate} events/s)`,
    );
    if (result.comparison) {
      const lines = describeDifferences(result.comparison);
      say(`${projection}: verify: ${lines.join('\n')}`);
      if (result.comparison.counts.discussion + result.comparison.counts.messages > 0) exitCode = 1;
    }
    if (result.replaced !== null) {
      say(`${projection}: reads switched to generation ${result.generation}; generation ${result.replaced} dropped`);
    } else if (args.switchReads) {
      say(`${projection}: reads NOT switched (differences found; --force switches anyway)`);
    } else {
      say(`${projection}: reads not switched (--no-switch); a later run resumes and switches generation ${result.generation}`);
    }
  }
} catch (error) {
  process.stderr.write(`replay failed: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = error instanceof ReplayBusyError ? 3 : 1;
} finally {
  await pool.end();
}
process.exit(exitCode);
