import { parseArgs } from 'node:util';
import { z } from 'zod';
import type { MemorySource } from './resident-memory.js';
import type { Gateway } from './worker-protocol.js';

/** The development secret of `src/shared/config.ts`; a gateway started without JWT_SECRET uses it. */
export const DEVELOPMENT_JWT_SECRET = 'dev-secret-change-me';

export const LOAD_HELP = `npm run bench -- [options]

Load tool for a running chat service (ours or anything speaking the same protocol: API.md). Creates N users
in N/2 conversations, connects every user's WebSocket, sends at a fixed total rate for a fixed time, and
reports what was sent, acknowledged, delivered to the recipient's socket, lost, duplicated, out of order,
and the send-to-delivery latency.

  --ws <urls>               WebSocket URL(s), comma-separated; users are spread over them
                            (default ws://127.0.0.1:8004/api/v1/chat/ws)
  --api <urls>              REST base URL(s), same order as --ws (default: from --ws, .../ws -> ...)
  --jwt-secret <secret>     HS256 secret the servers verify tokens with (default: the development secret)
  --users <n>               users, two per conversation (default 1000)
  --rate <r>                messages per second, in total (default 1000)
  --seconds <s>             length of the send (or, with --idle, of the hold) (default 10)
  --via ws|rest             send over the socket (send_message -> ack) or POST /messages (default ws)
  --read-rate <r>           meanwhile, GETs per second in total (default 0: none): messages, conversation
                            and list in turn, each by a random user of a random conversation; reports
                            their latency and answers by status (503: read_model_behind)
  --pick random|round-robin how each send picks its conversation and sender (default random)
  --workers <w>             worker processes (default 1; raised to hold at most 15000 sockets each)
  --first-user-id <id>      users are id, id+1, ... (default 1)
  --grace <s>               after the last send, how long acks and deliveries may still arrive (default 5)
  --connect-concurrency <n> sockets being opened at once, per worker (default 200)
  --idle                    connect the sockets, hold them --seconds, report how many stayed open
  --gateway-pid <pids>      with --idle: pids of the gateways, to report their resident memory per socket
  --gateway-metrics <urls>  with --idle: Prometheus /metrics URLs of the gateways, the same from
                            process_resident_memory_bytes
  --server-pids <pids>      processes of the system under load (same machine): their CPU time during the
                            send and grace is reported, in total and per message sent
  --infra-pids <pids>       servers the system uses (Postgres, NATS, Redis), with their child processes:
                            their CPU time during the send and grace is reported too (the load tool's
                            own always is)
  --hop-times <urls>        our roles' GET /hop-times URLs (ops ports; roles started with HOP_TIMES_CAPACITY):
                            after the run, the time each delivered message spent in each hop, p50/p90/p99
  --json                    print the report as JSON on stdout (progress goes to stderr)
  --help

Each worker binds its sockets to its own source address 127.0.0.<2+k>, so ephemeral ports do not run out.
The servers' rate limit applies to the load as to anyone: start them with a high
RATE_LIMIT_MESSAGES_PER_MINUTE (bench:compare does).`;

const positiveInt = z.coerce.number().int().positive();
const urlList = (protocol: RegExp) =>
  z
    .string()
    .transform((text) => text.split(',').map((item) => item.trim()).filter((item) => item !== ''))
    .pipe(z.array(z.url({ protocol })).min(1));

const schema = z
  .object({
    ws: urlList(/^wss?$/).default(['ws://127.0.0.1:8004/api/v1/chat/ws']),
    api: urlList(/^https?$/).optional(),
    'jwt-secret': z.string().min(1).default(DEVELOPMENT_JWT_SECRET),
    users: positiveInt.min(2).default(1000),
    rate: z.coerce.number().positive().default(1000),
    seconds: z.coerce.number().positive().default(10),
    'read-rate': z.coerce.number().nonnegative().default(0),
    via: z.enum(['ws', 'rest']).default('ws'),
    pick: z.enum(['random', 'round-robin']).default('random'),
    workers: positiveInt.max(250).default(1),
    'first-user-id': positiveInt.default(1),
    grace: z.coerce.number().nonnegative().default(5),
    'connect-concurrency': positiveInt.default(200),
    idle: z.boolean().default(false),
    'gateway-pid': z
      .string()
      .transform((text) => text.split(',').map((item) => Number(item.trim())))
      .pipe(z.array(z.number().int().positive()))
      .optional(),
    'gateway-metrics': urlList(/^https?$/).optional(),
    'server-pids': z
      .string()
      .transform((text) => text.split(',').map((item) => Number(item.trim())))
      .pipe(z.array(z.number().int().positive()))
      .default([]),
    'infra-pids': z
      .string()
      .transform((text) => text.split(',').map((item) => Number(item.trim())))
      .pipe(z.array(z.number().int().positive()))
      .default([]),
    'hop-times': urlList(/^https?$/).default([]),
    json: z.boolean().default(false),
  })
  .superRefine((options, context) => {
    if (options.api && options.api.length !== options.ws.length) {
      context.addIssue({ code: 'custom', path: ['api'], message: 'give as many --api URLs as --ws URLs' });
    }
  });

export type LoadOptions = {
  readonly gateways: readonly Gateway[];
  readonly jwtSecret: string;
  readonly users: number;
  readonly rate: number;
  readonly seconds: number;
  /** GETs per second during the send; 0: none. */
  readonly readRate: number;
  readonly via: 'ws' | 'rest';
  readonly pick: 'random' | 'round-robin';
  readonly workers: number;
  readonly firstUserId: number;
  readonly graceSeconds: number;
  readonly connectConcurrency: number;
  readonly idle: boolean;
  readonly memory: readonly MemorySource[];
  readonly serverPids: readonly number[];
  readonly infraPids: readonly number[];
  /** Roles' `/hop-times` URLs; none: no per-hop breakdown. */
  readonly hopTimes: readonly string[];
  readonly json: boolean;
};

/** `ws://host:port/api/v1/chat/ws` -> `http://host:port/api/v1/chat`. */
export function apiUrlOf(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.replace(/\/ws\/?$/, '');
  url.search = '';
  return url.toString().replace(/\/$/, '');
}

/** @returns the options, or `help` when asked for; throws with a readable message on a bad argument. */
export function parseLoadOptions(argv: readonly string[]): LoadOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      ws: { type: 'string' },
      api: { type: 'string' },
      'jwt-secret': { type: 'string' },
      users: { type: 'string' },
      rate: { type: 'string' },
      seconds: { type: 'string' },
      'read-rate': { type: 'string' },
      via: { type: 'string' },
      pick: { type: 'string' },
      workers: { type: 'string' },
      'first-user-id': { type: 'string' },
      grace: { type: 'string' },
      'connect-concurrency': { type: 'string' },
      idle: { type: 'boolean' },
      'gateway-pid': { type: 'string' },
      'gateway-metrics': { type: 'string' },
      'server-pids': { type: 'string' },
      'infra-pids': { type: 'string' },
      'hop-times': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw new Error(`bad arguments:\n${z.prettifyError(parsed.error)}`);
  const options = parsed.data;
  const apis = options.api ?? options.ws.map(apiUrlOf);
  return {
    gateways: options.ws.map((ws, index) => ({ ws, api: (apis[index] ?? apiUrlOf(ws)).replace(/\/$/, '') })),
    jwtSecret: options['jwt-secret'],
    users: options.users,
    rate: options.rate,
    seconds: options.seconds,
    readRate: options['read-rate'],
    via: options.via,
    pick: options.pick,
    workers: options.workers,
    firstUserId: options['first-user-id'],
    graceSeconds: options.grace,
    connectConcurrency: options['connect-concurrency'],
    idle: options.idle,
    memory: [
      ...(options['gateway-pid'] ?? []).map((pid): MemorySource => ({ kind: 'pid', pid })),
      ...(options['gateway-metrics'] ?? []).map((url): MemorySource => ({ kind: 'metrics', url })),
    ],
    serverPids: options['server-pids'],
    infraPids: options['infra-pids'],
    hopTimes: options['hop-times'],
    json: options.json,
  };
}
