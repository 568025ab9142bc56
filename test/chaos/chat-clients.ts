import { sleep } from '../../src/shared/sleep.js';
import { openSocket, type Frame, type TestSocket } from '../support/gateway.js';

/** One user's client: one socket at a time, reopened with the cursor of the last event frame it received. */
export type ChatClient = {
  readonly userId: number;
  readonly gateway: number;
  socket: TestSocket | null;
  cursor: string | null;
  /** Every event frame received, across reconnections, in arrival order. */
  readonly events: Frame[];
  /** Sockets opened so far: 1 + the reconnections. */
  connections: number;
};

export function newClient(userId: number, gateway: number): ChatClient {
  return { userId, gateway, socket: null, cursor: null, events: [], connections: 0 };
}

/** Keeps `client` connected until `stopped()`, resuming with `?since=` as API.md tells clients to. */
export async function keepConnected(client: ChatClient, options: { readonly url: string; readonly token: string; stopped(): boolean }): Promise<void> {
  while (!options.stopped()) {
    const since = client.cursor ? `?since=${encodeURIComponent(client.cursor)}` : '';
    const socket = await openSocket(`${options.url}${since}`, { token: options.token }).catch(() => null);
    if (!socket) {
      await sleep(200);
      continue;
    }
    client.connections++;
    // From the socket's own record of frames: the catch-up can arrive in the same read as the upgrade, before
    // a listener added after `openSocket` resolved would run.
    let taken = 0;
    const take = (): void => {
      for (; taken < socket.frames.length; taken++) {
        const frame = socket.frames[taken]!;
        if (typeof frame['seq'] !== 'number') continue;
        client.events.push(frame);
        client.cursor = frame['cursor'] as string;
      }
    };
    take();
    socket.ws.on('message', take);
    client.socket = socket;
    await socket.closed;
    client.socket = null;
  }
}

/** How a send ended: acknowledged, refused with an error code, or no answer within the request timeout. */
export type SendAnswer = { readonly kind: 'pending' } | { readonly kind: 'ack'; readonly at: number } | { readonly kind: 'error'; readonly code: string; readonly at: number } | { readonly kind: 'no answer' };

export type SentMessage = {
  readonly phase: string;
  readonly conversationId: string;
  readonly sender: number;
  readonly recipient: number;
  /** Unique per send: finds the message in the log, the tables and the frames whether or not it was acknowledged. */
  readonly clientMsgId: string;
  /** Unique per send too: looked for in the log after a delete for everyone. */
  readonly content: string;
  answer: SendAnswer;
  /** The message's id, from the ack's Message. */
  messageId?: string;
};

const REQUEST_TIMEOUT_MS = 5_000;

/**
 * The load: every `intervalMs`, the next user (round robin) sends in its conversation over its socket, if
 * it has one open. Every send is recorded with the phase it was sent in and how it was answered.
 */
export function startLoad(options: {
  readonly clients: ReadonlyMap<number, ChatClient>;
  readonly conversationOf: (userId: number) => string;
  readonly partnerOf: (userId: number) => number;
  readonly phase: () => string;
  readonly intervalMs: number;
  /** Called for each acknowledged send, once its id is known. */
  readonly onAcknowledged?: (message: SentMessage) => void;
}): { readonly sent: readonly SentMessage[]; stop(): Promise<void> } {
  const sent: SentMessage[] = [];
  const answers: Promise<void>[] = [];
  let stopping = false;
  const users = options.clients.size;
  const run = async (): Promise<void> => {
    for (let tick = 0; !stopping; tick++) {
      const sender = (tick % users) + 1;
      const socket = options.clients.get(sender)?.socket;
      if (socket && socket.ws.readyState === socket.ws.OPEN) {
        const phase = options.phase();
        const message: SentMessage = {
          phase,
          conversationId: options.conversationOf(sender),
          sender,
          recipient: options.partnerOf(sender),
          clientMsgId: `chaos-${tick}`,
          content: `${phase} #${tick}`,
          answer: { kind: 'pending' },
        };
        sent.push(message);
        answers.push(
          socket
            .request(
              { type: 'send_message', conversation_id: message.conversationId, content: message.content, client_msg_id: message.clientMsgId },
              REQUEST_TIMEOUT_MS,
            )
            .then(
              (answer) => {
                if (answer.type !== 'ack') {
                  message.answer = { kind: 'error', code: (answer['data'] as { code: string }).code, at: Date.now() };
                  return;
                }
                message.answer = { kind: 'ack', at: Date.now() };
                message.messageId = (answer['data'] as { id: string }).id;
                options.onAcknowledged?.(message);
              },
              () => {
                message.answer = { kind: 'no answer' };
              },
            ),
        );
      }
      await sleep(options.intervalMs);
    }
  };
  const running = run();
  return {
    sent,
    stop: async () => {
      stopping = true;
      await running;
      await Promise.all(answers);
    },
  };
}
