import { mkdir } from 'node:fs/promises';
import { startServerProcess } from './server-process.js';

export type RedisServerOptions = {
  readonly port: number;
  readonly dir: string;
  /** ACL users (`[name, ...rule]`, password included); given any, the default user is switched off. */
  readonly users?: readonly (readonly string[])[];
  readonly detached?: boolean;
  readonly onLog?: (line: string) => void;
};

export type RedisServer = {
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  close(): Promise<void>;
};

/** Starts a throwaway `redis-server` on 127.0.0.1 (no persistence); resolves once it accepts connections. */
export async function startRedisServer(options: RedisServerOptions): Promise<RedisServer> {
  await mkdir(options.dir, { recursive: true });
  const server = await startServerProcess({
    name: 'redis-server',
    command: 'redis-server',
    args: [
      ...['--port', String(options.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', options.dir],
      ...(options.users ? ['--user', 'default', 'off', 'resetpass', '-@all', ...options.users.flatMap((user) => ['--user', ...user])] : []),
    ],
    port: options.port,
    ...(options.detached !== undefined && { detached: options.detached }),
    ...(options.onLog && { onLog: options.onLog }),
  });
  return {
    url: `redis://127.0.0.1:${options.port}`,
    port: options.port,
    pid: server.child.pid,
    close: () => server.stop(),
  };
}
