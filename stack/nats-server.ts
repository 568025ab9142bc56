import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExitStatus } from './child-process.js';
import { renderAuthorization } from './nats-auth-config.js';
import type { NatsUser } from './nats-permissions.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

export type NatsServerOptions = {
  readonly storeDir: string;
  readonly port: number;
  readonly monitorPort?: number;
  /** Joins a JetStream cluster: this node's name, the cluster's name, its route port, the other nodes' routes. */
  readonly cluster?: {
    readonly name: string;
    readonly serverName: string;
    readonly port: number;
    readonly routePorts: readonly number[];
  };
  /** The only clients let in, each with its permissions (nats-permissions.ts); none: anyone, anonymously. */
  readonly users?: readonly NatsUser[];
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
  if (options.users) {
    // The flags above override the file, which holds the users only; readable by us alone (passwords).
    const configFile = path.join(options.storeDir, 'authorization.conf');
    await writeFile(configFile, renderAuthorization(options.users), { mode: 0o600 });
    args.push('-c', configFile);
  }
  if (options.monitorPort !== undefined) args.push('-m', String(options.monitorPort));
  if (options.cluster) {
    const { name, serverName, port, routePorts } = options.cluster;
    args.push('--server_name', serverName, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${port}`);
    args.push('--routes', routePorts.map((route) => `nats://127.0.0.1:${route}`).join(','));
  }
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

export type NatsCluster = {
  /** Every node's client URL, comma-separated: what NATS_URL takes. */
  readonly url: string;
  readonly nodes: readonly NatsServer[];
  close(): Promise<void>;
};

/**
 * A JetStream cluster of `clientPorts.length` nodes on loopback (three for replicas 3), each with its own
 * store under `storeDir`. Resolves once every node accepts clients; JetStream elects its meta leader a
 * moment later, so callers wait for it before creating streams.
 */
export async function startNatsCluster(options: {
  readonly storeDir: string;
  readonly clientPorts: readonly number[];
  readonly routePorts: readonly number[];
  readonly users?: readonly NatsUser[];
  readonly onLog?: (line: string) => void;
}): Promise<NatsCluster> {
  const nodes = await Promise.all(
    options.clientPorts.map((port, index) =>
      startNatsServer({
        storeDir: `${options.storeDir}/n${index + 1}`,
        port,
        cluster: {
          name: 'matcha',
          serverName: `n${index + 1}`,
          port: options.routePorts[index] ?? 0,
          routePorts: options.routePorts.filter((_, other) => other !== index),
        },
        ...(options.users && { users: options.users }),
        ...(options.onLog && { onLog: options.onLog }),
      }),
    ),
  );
  return {
    url: nodes.map((node) => node.url).join(','),
    nodes,
    close: async () => {
      await Promise.all(nodes.map((node) => node.close()));
    },
  };
}
