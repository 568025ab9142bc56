import { connect, type NatsConnection } from 'nats';

/**
 * Connects to NATS; keeps trying until a server answers, at start as after a loss, so that a role started
 * before NATS (a container scheduled first) waits for it instead of exiting, and a restarted server is
 * picked up again. `close()` is `drain()`.
 * With a user, the connection's reply inboxes are `_INBOX.<user>.…` (see `inboxPrefix`), so that the server
 * can let each role subscribe to its own replies only.
 */
export async function connectNats(options: {
  readonly url: string;
  readonly name: string;
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  /** False: the server does not deliver this connection's own messages to its subscriptions (nats `noEcho`). */
  readonly echo?: boolean;
}): Promise<NatsConnection> {
  const { user, password } = options;
  if ((user === undefined) !== (password === undefined)) {
    throw new Error('NATS_USER and NATS_PASSWORD go together: set both or neither');
  }
  return connect({
    servers: options.url.split(',').map((server) => server.trim()),
    name: options.name,
    ...(user !== undefined && password !== undefined && { user, pass: password, inboxPrefix: inboxPrefix(user) }),
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Otherwise every request (each JetStream publish, each ack wait) captures a stack trace up front, for a
    // better message if it times out: 15 % of the relay's CPU under load.
    noAsyncTraces: true,
    ...(options.echo === false && { noEcho: true }),
  });
}

/** Where the replies to a user's requests (JetStream API, publish acks, pulled messages) arrive. */
export function inboxPrefix(user: string): string {
  return `_INBOX.${user}`;
}

/** Subject names, built in one place. `prefix` is one token (`chat` in production, random per test file). */
export function eventSubject(prefix: string, conversationId: string): string {
  return `${prefix}.events.${conversationId}`;
}

export function allEventsSubject(prefix: string): string {
  return `${prefix}.events.>`;
}

/*
 * What goes to one user's sockets travels under `<prefix>.to.<user_id>.`, on two subjects told apart by their
 * last token: a gateway holding the user's sockets subscribes once, to `<prefix>.to.<user_id>.*`, so NATS
 * still routes a user's frames only to the gateways that hold that user, at one subscription per user.
 */
const EVENTS = 'events';
const SIGNALS = 'signals';

/** Event frames for one user's sockets; only the fan-out may publish here. */
export function deliverySubject(prefix: string, userId: number): string {
  return `${prefix}.to.${userId}.${EVENTS}`;
}

/** Ephemeral frames (typing, presence, fast-path copies of new messages) for one user's sockets, published by gateways. */
export function signalSubject(prefix: string, userId: number): string {
  return `${prefix}.to.${userId}.${SIGNALS}`;
}

/** Both of a user's subjects: what a gateway subscribes to for a user whose sockets it holds. */
export function userSubjects(prefix: string, userId: number): string {
  return `${prefix}.to.${userId}.*`;
}

/**
 * The user and the kind of subject (`deliverySubject` or `signalSubject`) of a message received on
 * `userSubjects`; null for any other last token, which no role may publish.
 */
export function parseUserSubject(subject: string): { readonly userId: number; readonly kind: 'delivery' | 'signal' } | null {
  const end = subject.lastIndexOf('.');
  const last = subject.slice(end + 1);
  const kind = last === EVENTS ? 'delivery' : last === SIGNALS ? 'signal' : null;
  if (kind === null) return null;
  const userId = Number(subject.slice(subject.lastIndexOf('.', end - 1) + 1, end));
  return Number.isSafeInteger(userId) ? { userId, kind } : null;
}

export function allDeliverySubjects(prefix: string): string {
  return `${prefix}.to.*.${EVENTS}`;
}

export function allSignalSubjects(prefix: string): string {
  return `${prefix}.to.*.${SIGNALS}`;
}

/**
 * Every user's subjects: what a gateway may subscribe to (NATS lets a client subscribe to `….to.<user>.*`
 * only if one allowed subject covers it whole; the two above do not).
 */
export function allUserSubjects(prefix: string): string {
  return `${prefix}.to.*.*`;
}
