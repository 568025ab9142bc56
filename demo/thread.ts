/**
 * The open conversation's messages as the page shows them: one entry per message id whatever path brought
 * it (a REST page, the send's ack, a live frame, a replay after a reconnect), ordered by `seq`, and the
 * sends not acknowledged yet (the client's offline queue) after them, each until its message arrives.
 */

export type ShownMessage = {
  readonly id: string;
  readonly seq: number;
  readonly senderId: number;
  /** null once deleted for everyone. */
  readonly text: string | null;
  readonly sentAt: string;
  readonly readAt: string | null;
  readonly deletedAt: string | null;
  readonly clientMsgId: string | null;
};

export type PendingMessage = {
  readonly clientMsgId: string;
  readonly text: string;
  /** Why the server refused it (blocked, too long, ...); a refused send stays shown, marked failed. */
  readonly failure: string | null;
};

export type Thread = {
  readonly conversationId: string;
  readonly messages: ReadonlyMap<string, ShownMessage>;
  readonly pending: readonly PendingMessage[];
  /** No older page left to load. */
  readonly complete: boolean;
};

export function emptyThread(conversationId: string): Thread {
  return { conversationId, messages: new Map(), pending: [], complete: false };
}

/** Adds messages, or newer states of ones already shown: read and deleted stick, whichever copy is older. */
export function withMessages(thread: Thread, incoming: readonly ShownMessage[]): Thread {
  if (incoming.length === 0) return thread;
  const messages = new Map(thread.messages);
  for (const message of incoming) {
    const known = messages.get(message.id);
    const deletedAt = message.deletedAt ?? known?.deletedAt ?? null;
    messages.set(message.id, {
      ...message,
      text: deletedAt === null ? message.text : null,
      readAt: message.readAt ?? known?.readAt ?? null,
      deletedAt,
    });
  }
  const arrived = new Set(incoming.flatMap((message) => (message.clientMsgId === null ? [] : [message.clientMsgId])));
  return { ...thread, messages, pending: thread.pending.filter((pending) => !arrived.has(pending.clientMsgId)) };
}

/** A send the client has queued; shown as pending until its message arrives. */
export function withPending(thread: Thread, clientMsgId: string, text: string): Thread {
  return { ...thread, pending: [...thread.pending, { clientMsgId, text, failure: null }] };
}

export function withFailedSend(thread: Thread, clientMsgId: string, failure: string): Thread {
  return { ...thread, pending: thread.pending.map((pending) => (pending.clientMsgId === clientMsgId ? { ...pending, failure } : pending)) };
}

/** `messages_read`: every message of the reader's partner before the read event (`beforeSeq`) is read. */
export function withReadBy(thread: Thread, readerId: number, readAt: string, beforeSeq: number): Thread {
  const messages = new Map(thread.messages);
  for (const message of thread.messages.values()) {
    if (message.senderId !== readerId && message.readAt === null && message.seq < beforeSeq) messages.set(message.id, { ...message, readAt });
  }
  return { ...thread, messages };
}

export function withDeleted(thread: Thread, messageId: string, deletedAt: string): Thread {
  const message = thread.messages.get(messageId);
  if (!message) return thread;
  return withMessages(thread, [{ ...message, deletedAt }]);
}

export function withComplete(thread: Thread): Thread {
  return { ...thread, complete: true };
}

/** Oldest first, as a chat reads. */
export function shownMessages(thread: Thread): readonly ShownMessage[] {
  return [...thread.messages.values()].sort((a, b) => a.seq - b.seq);
}

export function oldestMessageId(thread: Thread): string | undefined {
  return shownMessages(thread)[0]?.id;
}
