import { readFileSync } from 'node:fs';
import net from 'node:net';

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

/** The kernel's range for ephemeral ports (port 0 binds, outgoing connections); Linux's default otherwise. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // Not Linux: keep the default.
  }
  return [32768, 60999];
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago; another process may still take it first. It is chosen
 * outside the ephemeral range, so that a process binding port 0 (a role's OPS_PORT=0, say) or opening an
 * outgoing connection cannot be handed it by the kernel in between.
 */
export async function getFreePort(): Promise<number> {
  const [low, high] = ephemeralRange();
  const [from, to] = low > 11_000 ? [10_000, low - 1] : [high + 1, 65_535];
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    if (await isPortFree(port)) return port;
  }
  return listenOnce(0);
}

/** `count` distinct free ports, for servers that are started concurrently. */
export async function getFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort());
  return [...ports];
}

/** True when 127.0.0.1:port can be bound now (nothing listens on it, nor on the wildcard address). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await listenOnce(port);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after `timeoutMs` or when `abort` settles. */
export async function waitForPort(port: number, options: { timeoutMs: number; abort?: Promise<unknown> }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let aborted = false;
  void options.abort?.finally(() => {
    aborted = true;
  });
  while (!aborted) {
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`nothing accepted connections on 127.0.0.1:${port} within ${options.timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for 127.0.0.1:${port}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
