import { WebSocket } from 'ws';
import { sleep } from './bounded-parallel.js';
import { frameText } from './frame-text.js';

/**
 * Opens a WebSocket from `localAddress` and resolves once the server's `connected` frame arrived (the
 * socket is then registered for delivery), or rejects with a short reason. Compression off: the servers
 * measured here do not negotiate it, and it would cost the tool CPU for nothing.
 */
export function openSocket(url: string, options: { readonly localAddress: string; readonly timeoutMs: number }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { localAddress: options.localAddress, perMessageDeflate: false, handshakeTimeout: options.timeoutMs });
    const timer = setTimeout(() => fail(new Error('no connected frame in time')), options.timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.terminate();
      reject(error);
    };
    socket.on('error', fail);
    socket.on('close', (code) => fail(new Error(`closed with ${code} before connected`)));
    socket.on('message', (data) => {
      let frame: unknown;
      try {
        frame = JSON.parse(frameText(data));
      } catch {
        return;
      }
      if (typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'connected') {
        clearTimeout(timer);
        socket.removeAllListeners();
        resolve(socket);
      }
    });
  });
}

/** `openSocket` with up to `attempts` tries and exponential backoff with jitter between them. */
export async function openSocketWithRetry(
  url: string,
  options: { readonly localAddress: string; readonly timeoutMs: number; readonly attempts: number; readonly onRetry: () => void },
): Promise<WebSocket> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openSocket(url, options);
    } catch (error) {
      if (attempt >= options.attempts) throw error;
      options.onRetry();
      await sleep(Math.min(5_000, 200 * 2 ** attempt) * (0.5 + Math.random()));
    }
  }
}
