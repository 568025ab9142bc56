import { connect, type NatsConnection } from 'nats';

/** Connects to NATS; reconnects forever so that a restarted server is picked up again. `close()` is `drain()`. */
export async function connectNats(options: { readonly url: string; readonly name: string }): Promise<NatsConnection> {
  return connect({
    servers: options.url.split(',').map((server) => server.trim()),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Otherwise every request (each JetStream publish, each ack wait) captures a stack trace up front, for a
    // better message if it times out: 15 % of the relay's CPU under load.
    noAsyncTraces: true,
  });
}

/** Subject names, built in one place. `prefix` is one token (`chat` in production, random per test file). */
export function eventSubject(prefix: string, conversationId: string): string {
  return `${prefix}.events.${conversationId}`;
}

export function allEventsSubject(prefix: string): string {
  return `${prefix}.events.>`;
}

export function deliverySubject(prefix: string, userId: number): string {
  return `${prefix}.deliver.${userId}`;
}
