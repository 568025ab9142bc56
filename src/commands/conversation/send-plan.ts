import { DomainError } from '../domain-error.js';
import { assertValidClientMsgId } from './message-content.js';
import { clientIdKey, type ClientIdKey, type OriginalMessage } from './reservations.js';

/** What planning a send needs of it. */
export type PlannableSend = { readonly conversationId: string; readonly senderId: number; readonly clientMsgId?: string | null | undefined };

/** What a send of a batch comes to before anything is appended, given the `client_msg_id`s already taken. */
export type PlannedSend =
  /** Its `client_msg_id` is malformed, or was taken by a message to another conversation. */
  | { readonly kind: 'refused'; readonly error: DomainError }
  /** Its `client_msg_id` was taken by a message to this conversation: a retry, answered with that message. */
  | { readonly kind: 'retry'; readonly original: OriginalMessage }
  /** To be decided and appended, with its `client_msg_id`'s reservation when it has one. */
  | { readonly kind: 'append' }
  /** An earlier send of the batch has its `client_msg_id`: planned again once that one is settled. */
  | { readonly kind: 'later' };

const keyOf = (send: PlannableSend): ClientIdKey | null =>
  send.clientMsgId === undefined || send.clientMsgId === null ? null : { senderId: send.senderId, clientMsgId: send.clientMsgId };

function isValid(key: ClientIdKey): boolean {
  try {
    assertValidClientMsgId(key.clientMsgId);
    return true;
  } catch {
    return false;
  }
}

/** The `client_msg_id`s to look up before planning: those of the sends that carry a valid one. */
export function clientIdsToLookUp(sends: readonly PlannableSend[]): ClientIdKey[] {
  return sends.flatMap((send) => {
    const key = keyOf(send);
    return key && isValid(key) ? [key] : [];
  });
}

/**
 * Plans a batch of sends, given the messages that already took their `client_msg_id`s (by `clientIdKey`).
 * Pure: the caller looked the ids up, and appends the sends planned `append` in one statement.
 */
export function planSends(sends: readonly PlannableSend[], taken: ReadonlyMap<string, OriginalMessage>): PlannedSend[] {
  const appending = new Set<string>();
  return sends.map((send): PlannedSend => {
    const key = keyOf(send);
    if (key === null) return { kind: 'append' };
    try {
      assertValidClientMsgId(key.clientMsgId);
    } catch (error) {
      if (error instanceof DomainError) return { kind: 'refused', error };
      throw error;
    }
    const mapKey = clientIdKey(key);
    const original = taken.get(mapKey);
    if (original) {
      return original.conversationId === send.conversationId
        ? { kind: 'retry', original }
        : { kind: 'refused', error: new DomainError('client_msg_id_conflict', 'client_msg_id was already used for another conversation') };
    }
    if (appending.has(mapKey)) return { kind: 'later' };
    appending.add(mapKey);
    return { kind: 'append' };
  });
}
