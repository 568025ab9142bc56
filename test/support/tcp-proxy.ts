import net from 'node:net';

/**
 * What the proxy does with the bytes of its connections:
 * - `pass`: forwards both ways;
 * - `deaf`: holds what the server sends (the client hears nothing), forwards what the client sends;
 * - `mute`: drops what the client sends (the server hears nothing), forwards what the server sends.
 */
export type ProxyMode = 'pass' | 'deaf' | 'mute';

export type TcpProxy = {
  readonly port: number;
  /** `nats://127.0.0.1:<port>`: where a client connects instead of the server. */
  readonly url: string;
  /** Holds the server's bytes from now on, until `mute` or `cut`. */
  deafen(): void;
  /** Writes the held server bytes to each client in one piece, then drops the client's bytes from now on. */
  mute(): void;
  /** Writes the held server bytes to each client in one piece, then passes both ways again. */
  release(): void;
  /** Destroys every connection; the next ones pass both ways, or are refused until `allow` with `refuse`. */
  cut(options?: { readonly refuse?: boolean }): void;
  /** Accepts connections again after `cut({ refuse: true })`. */
  allow(): void;
  /** The server bytes held since `deafen`, as text. */
  held(): string;
  /** The client bytes dropped since `mute`, as text. */
  dropped(): string;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
};

type Link = { readonly client: net.Socket; readonly server: net.Socket; heldFromServer: Buffer[] };

/**
 * A TCP proxy in front of a server (nats-server, Postgres), for tests that make a connection fail from
 * outside: a client that goes through it can be left without answers, disconnected, refused for a while,
 * and reconnects through it again. Listens on 127.0.0.1, on `options.port` (any free one by default).
 */
export async function startTcpProxy(
  target: { readonly host: string; readonly port: number },
  options: { readonly port?: number } = {},
): Promise<TcpProxy> {
  let mode: ProxyMode = 'pass';
  let refusing = false;
  let held = '';
  let dropped = '';
  let accepted = 0;
  const links = new Set<Link>();

  const listener = net.createServer((client) => {
    if (refusing) return void client.destroy();
    accepted++;
    const server = net.connect(target);
    const link: Link = { client, server, heldFromServer: [] };
    links.add(link);
    const end = (): void => {
      links.delete(link);
      client.destroy();
      server.destroy();
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (mode === 'mute') dropped += chunk.toString('latin1');
      else server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (mode === 'deaf') {
        link.heldFromServer.push(chunk);
        held += chunk.toString('latin1');
      } else client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = listener.address() as net.AddressInfo;
  const destroyAll = (): void => {
    for (const link of [...links]) {
      link.client.destroy();
      link.server.destroy();
    }
  };

  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    deafen: () => {
      mode = 'deaf';
      held = '';
    },
    mute: () => {
      mode = 'mute';
      dropped = '';
      for (const link of links) link.client.write(Buffer.concat(link.heldFromServer.splice(0)));
    },
    release: () => {
      mode = 'pass';
      for (const link of links) link.client.write(Buffer.concat(link.heldFromServer.splice(0)));
    },
    cut: (cutOptions = {}) => {
      mode = 'pass';
      refusing = cutOptions.refuse ?? false;
      destroyAll();
    },
    allow: () => {
      refusing = false;
    },
    held: () => held,
    dropped: () => dropped,
    connections: () => accepted,
    close: async () => {
      destroyAll();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** Host and port of a `nats://host:port` (or any) URL. */
export function hostAndPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}
