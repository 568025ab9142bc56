/**
 * The socket's connection life cycle as a pure state machine: `transition(state, event)` returns the next
 * state and the effects the client must carry out, in order. No IO, no timers: the client (chat-client.ts)
 * feeds it what happened and does what it says.
 *
 * - `connect` opens a socket; once it is open the client sends the first `auth` frame; the server's
 *   `connected` frame makes the connection `open` and resets the backoff.
 * - A close 4401 (bad or expired token) reopens at once with a token asked again of the app, once: a
 *   second 4401 in a row (no `connected` between) ends in `closed` with an `unauthorized` failure.
 * - Closes that are not about this client (1006 lost, 1011 internal, 1012 restart, 4008 slow reader, 4429
 *   too many sockets, 1009, and a socket with no frame for too long) reopen after the jittered backoff of
 *   the attempt, which counts the failures since the last `connected`.
 * - 1008 (policy violation) and other 4xxx codes this client does not know are final: `closed` with a failure.
 * - `close` ends everything, in any state.
 */

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export type MachineState = {
  readonly phase: ConnectionState;
  /** Failed attempts since the last `connected`: the backoff's exponent. */
  readonly attempt: number;
  /** 4401 closes in a row since the last `connected`. */
  readonly authRejections: number;
};

export type MachineEvent =
  | { readonly type: 'connect' }
  | { readonly type: 'socketOpened' }
  | { readonly type: 'connected' }
  | { readonly type: 'socketClosed'; readonly code: number; readonly reason: string }
  /** No frame from the server for longer than the keepalive allows: the socket is dead. */
  | { readonly type: 'stalled' }
  | { readonly type: 'retryDue' }
  | { readonly type: 'close' };

export type Effect =
  | { readonly type: 'openSocket' }
  | { readonly type: 'sendAuth' }
  /** Stop listening to the current socket and close it (its own close event no longer matters). */
  | { readonly type: 'discardSocket' }
  | { readonly type: 'scheduleRetry'; readonly attempt: number }
  | { readonly type: 'cancelRetry' }
  /** The socket is authenticated: start keepalive and token refresh, send what waits. */
  | { readonly type: 'goOnline' }
  /** The socket is gone: stop keepalive and refresh, put unanswered requests back in the queue. */
  | { readonly type: 'goOffline' }
  | { readonly type: 'fail'; readonly code: string; readonly message: string };

export type Transition = { readonly state: MachineState; readonly effects: readonly Effect[] };

export const initialState: MachineState = { phase: 'idle', attempt: 0, authRejections: 0 };

const CLOSE_UNAUTHORIZED = 4401;
/** What a socket that went silent counts as: lost, like a connection dropped without a close frame. */
const CLOSE_ABNORMAL = 1006;
const RETRYABLE_4XXX: ReadonlySet<number> = new Set([4008, 4429]);

type CloseClass = 'unauthorized' | 'retry' | 'final';

export function classifyClose(code: number): CloseClass {
  if (code === CLOSE_UNAUTHORIZED) return 'unauthorized';
  if (code === 1008) return 'final';
  if (code >= 4000 && code <= 4999) return RETRYABLE_4XXX.has(code) ? 'retry' : 'final';
  return 'retry';
}

const stay = (state: MachineState): Transition => ({ state, effects: [] });

export function transition(state: MachineState, event: MachineEvent): Transition {
  if (state.phase === 'closed') return stay(state);
  if (event.type === 'close') {
    return { state: { ...state, phase: 'closed' }, effects: [{ type: 'cancelRetry' }, { type: 'discardSocket' }, { type: 'goOffline' }] };
  }
  switch (state.phase) {
    case 'idle':
      return event.type === 'connect' ? { state: { ...state, phase: 'connecting' }, effects: [{ type: 'openSocket' }] } : stay(state);
    case 'connecting':
    case 'reconnecting':
      switch (event.type) {
        case 'socketOpened':
          return { state, effects: [{ type: 'sendAuth' }] };
        case 'connected':
          return { state: { phase: 'open', attempt: 0, authRejections: 0 }, effects: [{ type: 'goOnline' }] };
        case 'retryDue':
          return { state, effects: [{ type: 'openSocket' }] };
        case 'socketClosed':
          return afterLoss(state, event.code, event.reason, []);
        case 'stalled':
          return afterLoss(state, CLOSE_ABNORMAL, 'no frame from the server in time', [{ type: 'discardSocket' }]);
        case 'connect':
          return stay(state);
      }
      break;
    case 'open':
      switch (event.type) {
        case 'socketClosed':
          return afterLoss(state, event.code, event.reason, [{ type: 'goOffline' }]);
        case 'stalled':
          return afterLoss(state, CLOSE_ABNORMAL, 'no frame from the server in time', [{ type: 'discardSocket' }, { type: 'goOffline' }]);
        case 'connect':
        case 'socketOpened':
        case 'connected':
        case 'retryDue':
          return stay(state);
      }
  }
  return stay(state);
}

function afterLoss(state: MachineState, code: number, reason: string, first: readonly Effect[]): Transition {
  switch (classifyClose(code)) {
    case 'unauthorized':
      if (state.authRejections >= 1) {
        return {
          state: { ...state, phase: 'closed' },
          effects: [...first, { type: 'fail', code: 'unauthorized', message: `the server refused the token twice in a row (4401: ${reason})` }],
        };
      }
      return { state: { ...state, phase: 'reconnecting', authRejections: state.authRejections + 1 }, effects: [...first, { type: 'openSocket' }] };
    case 'final':
      return {
        state: { ...state, phase: 'closed' },
        effects: [...first, { type: 'fail', code: 'closed', message: `the server closed the socket for good (${code}: ${reason})` }],
      };
    case 'retry':
      return {
        state: { ...state, phase: 'reconnecting', attempt: state.attempt + 1 },
        effects: [...first, { type: 'scheduleRetry', attempt: state.attempt }],
      };
  }
}
