import net from 'node:net';

/** A TCP proxy in front of a server (nats-server, Postgres) whose connections a test can cut and refuse for a while. */
export type TcpProxy = {
  readonly port: number;
  /** Cuts every connection now and refuses new ones until `allow`. */
  cut(): void;
  allow(): void;
  close(): Promise<void>;
};

/** Listens on `port` of 127.0.0.1 (0: any free one) and forwards each connection to `targetPort`. */
export async function startTcpProxy(port: number, targetPort: number): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(from);
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        open.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const cutAll = () => {
    for (const socket of open) socket.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      refusing = true;
      cutAll();
    },
    allow() {
      refusing = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}
