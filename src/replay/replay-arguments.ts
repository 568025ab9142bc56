import { parseArgs } from 'node:util';
import { z } from 'zod';
import { CONVERSATIONS_PROJECTION } from '../projections/read-model-generations.js';

/** The projections the replay can rebuild (each has a row in `read_model_generations`). */
export const REPLAYABLE_PROJECTIONS = [CONVERSATIONS_PROJECTION] as const;

export const REPLAY_HELP = `Usage: npm run replay -- [options]

Rebuilds read tables from the Postgres event log into a fresh generation while the live tables keep
serving, then switches reads to it in one transaction. A run that is interrupted (Ctrl-C, kill, crash)
resumes where it stopped when started again. Nothing is published: no frames, no notifications.

Options:
  --projection <name>  ${REPLAYABLE_PROJECTIONS.join(', ')}, or all (default: all)
  --verify             before switching, compare the rebuilt tables with the live ones and print the
                       differences; differences stop the switch (exit code 1) unless --force
  --no-switch          build (and verify) only; reads stay on the live tables
  --force              switch even when --verify finds differences
  --restart            drop a half-built generation and start over instead of resuming it
  --batch-size <n>     events per transaction (default 5000)
  -h, --help           this text

Environment: DATABASE_URL (or DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD).
Exit codes: 0 done; 1 differences found or the rebuild failed; 2 bad arguments; 3 another replay of the
same projection is running.`;

export type ReplayArguments =
  | { readonly help: true }
  | {
      readonly help: false;
      readonly projections: readonly string[];
      readonly verify: boolean;
      readonly switchReads: boolean;
      readonly force: boolean;
      readonly restart: boolean;
      readonly batchSize: number;
    };

const projectionName = z.enum([...REPLAYABLE_PROJECTIONS, 'all']);
const batchSize = z.coerce.number().int().min(1).max(50_000);

/** @throws Error with a message fit for the terminal when the arguments are not understood. */
export function parseReplayArguments(args: readonly string[]): ReplayArguments {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      projection: { type: 'string', default: 'all' },
      verify: { type: 'boolean', default: false },
      'no-switch': { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      restart: { type: 'boolean', default: false },
      'batch-size': { type: 'string', default: '5000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  const projection = projectionName.safeParse(values.projection);
  if (!projection.success) {
    throw new Error(`--projection must be one of ${projectionName.options.join(', ')}, not "${values.projection}"`);
  }
  const size = batchSize.safeParse(values['batch-size']);
  if (!size.success) throw new Error(`--batch-size must be an integer from 1 to 50000, not "${values['batch-size']}"`);
  return {
    help: false,
    projections: projection.data === 'all' ? REPLAYABLE_PROJECTIONS : [projection.data],
    verify: values.verify,
    switchReads: !values['no-switch'],
    force: values.force,
    restart: values.restart,
    batchSize: size.data,
  };
}
