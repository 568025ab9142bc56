import { DomainError } from '../domain-error.js';

export const MAX_MESSAGE_CODE_POINTS = 1000;

/**
 * The seed's content rule: 1 to 1000 Unicode code points (an emoji such as U+1F600 counts as one, though it
 * is two UTF-16 units), and not only whitespace. Also what can be stored and given back byte for byte:
 * well-formed Unicode (a lone UTF-16 surrogate has no UTF-8 form) and no U+0000 (Postgres text cannot hold it).
 * @throws DomainError `blank_message`, `too_long` or `invalid_characters`.
 */
export function assertValidMessageContent(content: string): void {
  if (content.trim().length === 0) throw new DomainError('blank_message', 'message must not be empty or blank');
  if (!content.isWellFormed() || content.includes('\u0000')) {
    throw new DomainError('invalid_characters', 'message must be valid Unicode text without NUL characters');
  }
  let codePoints = 0;
  for (const _ of content) {
    if (++codePoints > MAX_MESSAGE_CODE_POINTS) {
      throw new DomainError('too_long', `message must be at most ${MAX_MESSAGE_CODE_POINTS} characters`);
    }
  }
}

export const MAX_CLIENT_MSG_ID_LENGTH = 128;

/**
 * A client's idempotency key: 1 to 128 code points of well-formed text without control characters (a UUID,
 * typically). It is stored and compared as given.
 * @throws DomainError `invalid_client_msg_id`.
 */
export function assertValidClientMsgId(clientMsgId: string): void {
  const length = [...clientMsgId].length;
  if (length < 1 || length > MAX_CLIENT_MSG_ID_LENGTH || !clientMsgId.isWellFormed() || /\p{Cc}/u.test(clientMsgId)) {
    throw new DomainError(
      'invalid_client_msg_id',
      `client_msg_id must be 1 to ${MAX_CLIENT_MSG_ID_LENGTH} characters without control characters`,
    );
  }
}
