import { mkdir } from 'node:fs/promises';
import type { ExitStatus } from './child-process.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

export type NatsServerOptions = {
  readonly storeDir: string;
  readonly port: number;
  readonly monitorPort?: number;
  readonly detached?: boolean;
  readonly onLog?: (line: string) => void;
};

export type NatsServer = {
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** Resolves when the current server process exits (after `kill`, say). */
  exited(): Promise<ExitStatus>;
  /** Sends a signal without waiting: SIGKILL simulates a crash, SIGTERM a graceful stop. */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the server if it still runs and starts it again on the same port and store. */
  restart(): Promise<void>;
  close(): Promise<void>;
};

/** Starts `nats-server -js` on 127.0.0.1; resolves once it accepts connections. */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServer> {
  await mkdir(options.storeDir, { recursive: true });
  const args = ['-js', '-a', '127.0.0.1', '-p', String(options.port), '-sd', options.storeDir];
  if (options.monitorPort !== undefined) args.push('-m', String(options.monitorPort));
  const launch = (): Promise<ServerProcess> =>
    startServerProcess({
      name: 'nats-server',
      command: 'nats-server',
      args,
      port: options.port,
      ...(options.detached !== undefined && { detached: options.detached }),
      ...(options.onLog && { onLog: options.onLog }),
    });

  let server = await launch();
  return {
    url: `nats://127.0.0.1:${options.port}`,
    port: options.port,
    get pid() {
      return server.child.pid;
    },
    exited: () => server.exited,
    kill: (signal = 'SIGKILL') => server.kill(signal),
    restart: async () => {
      await server.stop();
      server = await launch();
    },
    close: () => server.stop(),
  };
}
