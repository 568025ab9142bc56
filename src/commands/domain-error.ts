/**
 * Every rule a command can break. One module of the gateway maps these codes to HTTP statuses and WS error
 * frames; the domain does not know about transports.
 */
export type DomainErrorCode =
  | 'not_found'
  | 'self_conversation'
  | 'conversation_exists'
  | 'blank_message'
  | 'too_long'
  | 'invalid_characters'
  | 'invalid_client_msg_id'
  | 'client_msg_id_conflict'
  /** The caller blocked the conversation: it stays readable, nothing can be sent in it. */
  | 'blocked'
  /** The caller takes part but may not do this (delete the other participant's message). */
  | 'forbidden';

export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
