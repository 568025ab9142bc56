import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { frameText } from '../load/frame-text.js';
import { BaselineError, type ChatService } from './chat-service.js';

const requestId = z.union([z.string().max(128), z.number()]).optional();
const clientFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('send_message'), request_id: requestId, conversation_id: z.coerce.number().int().positive(), content: z.string() }),
  z.object({ type: z.literal('ping'), request_id: requestId }),
]);

export const SOCKET_PATH = '/api/v1/chat/ws';

export type SocketServer = {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Writes a frame to every local socket of `userId` (a broadcast arrived). */
  deliver(userId: number, text: string): void;
  readonly size: number;
  close(): void;
};

const now = (): string => new Date().toISOString();

/**
 * The seed's WebSocket, with the token as Matcha's frontend sends it (`?token=` or a bearer header):
 * `connected` after auth, frames of one socket handled one at a time in order (the Go read loop), an
 * `error` frame for a bad frame (the socket stays open), a ping every interval.
 */
export function createSocketServer(deps: { readonly service: ChatService; readonly pingIntervalMs: number }): SocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 8_192, clientTracking: false });
  const byUser = new Map<number, Set<WebSocket>>();
  const alive = new WeakMap<WebSocket, boolean>();
  let size = 0;

  const heartbeat = setInterval(() => {
    for (const sockets of byUser.values()) {
      for (const socket of sockets) {
        if (alive.get(socket) === false) {
          socket.terminate();
          continue;
        }
        alive.set(socket, false);
        socket.ping();
      }
    }
  }, deps.pingIntervalMs);
  heartbeat.unref();

  function open(socket: WebSocket, userId: number): void {
    let sockets = byUser.get(userId);
    if (!sockets) byUser.set(userId, (sockets = new Set()));
    sockets.add(socket);
    size++;
    alive.set(socket, true);
    const send = (frame: object): void => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    };
    let queue = Promise.resolve();
    socket.on('pong', () => alive.set(socket, true));
    socket.on('message', (data) => {
      const text = frameText(data);
      queue = queue.then(() => handle(text, userId, send));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      size--;
      if (sockets.size === 0) byUser.delete(userId);
    });
    send({ type: 'connected', timestamp: now(), data: { user_id: userId, status: 'connected' } });
  }

  async function handle(text: string, userId: number, send: (frame: object) => void): Promise<void> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return send({ type: 'error', timestamp: now(), data: { code: 'invalid_json', message: 'frame is not valid JSON' } });
    }
    const parsed = clientFrame.safeParse(json);
    if (!parsed.success) {
      return send({ type: 'error', timestamp: now(), data: { code: 'invalid_frame', message: z.prettifyError(parsed.error) } });
    }
    const frame = parsed.data;
    const echo = frame.request_id === undefined ? {} : { request_id: frame.request_id };
    if (frame.type === 'ping') return send({ type: 'pong', ...echo, timestamp: now() });
    try {
      const message = await deps.service.sendMessage(userId, frame.conversation_id, frame.content);
      if (frame.request_id !== undefined) send({ type: 'ack', request_id: frame.request_id, timestamp: now(), data: message });
    } catch (error) {
      const known = error instanceof BaselineError;
      send({
        type: 'error',
        ...echo,
        timestamp: now(),
        data: { code: known ? error.code : 'internal', message: known ? error.message : 'internal error' },
      });
    }
  }

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://baseline.invalid');
    if (url.pathname !== SOCKET_PATH) return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    const token = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? url.searchParams.get('token');
    let userId: number;
    try {
      if (!token) throw new BaselineError(401, 'unauthorized', 'missing token');
      userId = await deps.service.authenticate(token);
    } catch {
      return void socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
    if (socket.destroyed) return;
    wss.handleUpgrade(request, socket, head, (ws) => open(ws, userId));
  }

  return {
    handleUpgrade(request, socket, head) {
      socket.on('error', () => undefined);
      upgrade(request, socket, head).catch(() => socket.destroy());
    },
    deliver(userId, text) {
      for (const socket of byUser.get(userId) ?? []) {
        if (socket.readyState === WebSocket.OPEN) socket.send(text);
      }
    },
    get size() {
      return size;
    },
    close() {
      clearInterval(heartbeat);
      for (const sockets of byUser.values()) for (const socket of sockets) socket.close(1001, 'server is shutting down');
      wss.close();
    },
  };
}
