export { ChatClient, type ChatClientOptions, type ChatEvents, type CursorStore } from './chat-client.js';
export { ChatError } from './chat-error.js';
export type { ConnectionState } from './connection-machine.js';
export type { ChatRest } from './rest.js';
export type { TokenProvider } from './token-provider.js';
export type * from './frames.js';
export { backoffDelay, type BackoffSettings } from './backoff.js';
export { tokenExpiryMs } from './token-refresh.js';
