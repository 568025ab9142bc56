import { sleep } from '../../src/shared/sleep.js';
import type { ApiResponse } from '../support/gateway.js';
import type { SentMessage } from './chat-clients.js';

/** One answer to a REST call: its status and error code, or none within the request timeout. */
export type RestAnswer = { readonly status: number | 'no answer'; readonly code: string | null };

/** A REST call as `userId`, to that user's gateway. */
export type RestCall = (userId: number, method: string, path: string, signal: AbortSignal) => Promise<ApiResponse>;

const REQUEST_TIMEOUT_MS = 5_000;
const RETRY_PAUSE_MS = 250;
/** Long enough to outlast a restart of the gateway or of Postgres; a command still unanswered then is given up. */
const RETRY_FOR_MS = 30_000;

/** No answer, or a 503 (a server the gateway needs is down or behind): a client tries again. */
const tryAgain = (answer: RestAnswer): boolean => answer.status === 'no answer' || answer.status === 503;

/**
 * Calls until an answer other than "try again", or until `RETRY_FOR_MS` have passed; every answer is
 * recorded in `answers`. Resolves with the last response, or null when the last attempt got none.
 */
async function callUntilAnswered(call: (signal: AbortSignal) => Promise<ApiResponse>, answers: RestAnswer[]): Promise<ApiResponse | null> {
  const deadline = Date.now() + RETRY_FOR_MS;
  for (;;) {
    const response = await call(AbortSignal.timeout(REQUEST_TIMEOUT_MS)).catch(() => null);
    const answer: RestAnswer = response
      ? { status: response.status, code: typeof response.body['code'] === 'string' ? response.body['code'] : null }
      : { status: 'no answer', code: null };
    answers.push(answer);
    if (!tryAgain(answer) || Date.now() > deadline) return response;
    await sleep(RETRY_PAUSE_MS);
  }
}

export type DeleteRequest = {
  readonly phase: string;
  readonly conversationId: string;
  readonly sender: number;
  readonly recipient: number;
  readonly messageId: string;
  /** The message's text, unique in the run: it must be nowhere in the log once the delete is acknowledged. */
  readonly content: string;
  /** Every answer, retries included, in order. */
  readonly answers: RestAnswer[];
};

/**
 * Deletes for everyone: every `every`-th acknowledged send of a user `mayDelete` allows (`consider`), and
 * any acknowledged send given to `deleteNow`, is deleted by its sender over REST (`DELETE /messages/:id`),
 * once, retried on no answer or a 503 as a client would.
 */
export function startDeletes(options: {
  readonly every: number;
  readonly mayDelete: (userId: number) => boolean;
  readonly phase: () => string;
  readonly call: RestCall;
}): {
  readonly requests: readonly DeleteRequest[];
  readonly consider: (message: SentMessage) => void;
  readonly deleteNow: (message: SentMessage) => void;
  stop(): Promise<void>;
} {
  const requests: DeleteRequest[] = [];
  const requested = new Set<string>();
  const running: Promise<unknown>[] = [];
  let considered = 0;
  const deleteNow = (message: SentMessage): void => {
    if (message.messageId === undefined || requested.has(message.messageId)) return;
    requested.add(message.messageId);
    const request: DeleteRequest = {
        phase: options.phase(),
        conversationId: message.conversationId,
        sender: message.sender,
        recipient: message.recipient,
        messageId: message.messageId,
        content: message.content,
      answers: [],
    };
    requests.push(request);
    const path = `/api/v1/chat/messages/${request.messageId}`;
    running.push(callUntilAnswered((signal) => options.call(request.sender, 'DELETE', path, signal), request.answers));
  };
  return {
    requests,
    consider: (message) => {
      if (options.mayDelete(message.sender) && ++considered % options.every === 0) deleteNow(message);
    },
    deleteNow,
    stop: async () => {
      await Promise.all(running);
    },
  };
}

export type BlockPair = { readonly conversationId: string; readonly blocker: number; readonly blocked: number };

export type BlockToggle = BlockPair & {
  readonly phase: string;
  readonly action: 'block' | 'unblock';
  readonly answers: RestAnswer[];
  /** `blocked_by` of the Conversation a 200 answered with. */
  blockedBy?: number | null;
};

/**
 * Each pair's blocker blocks and unblocks its conversation in turn, one change every `intervalMs`, each
 * retried on no answer or a 503; `onBlocked` is called after each block answered 200. `stop` ends with every conversation unblocked (answered 200), so that
 * both participants can be sent the last message.
 */
export function startBlockToggles(options: {
  readonly pairs: readonly BlockPair[];
  readonly intervalMs: number;
  readonly phase: () => string;
  readonly call: RestCall;
  readonly onBlocked?: (pair: BlockPair) => void;
}): { readonly toggles: readonly BlockToggle[]; stop(): Promise<void> } {
  const toggles: BlockToggle[] = [];
  let stopping = false;
  const toggle = async (pair: BlockPair, action: BlockToggle['action']): Promise<BlockToggle> => {
    const record: BlockToggle = { ...pair, phase: options.phase(), action, answers: [] };
    toggles.push(record);
    const method = action === 'block' ? 'POST' : 'DELETE';
    const path = `/api/v1/chat/conversations/${pair.conversationId}/block`;
    const response = await callUntilAnswered((signal) => options.call(pair.blocker, method, path, signal), record.answers);
    if (response?.status === 200) record.blockedBy = (response.body['data'] as { blocked_by: number | null }).blocked_by;
    return record;
  };
  const run = async (pair: BlockPair): Promise<void> => {
    for (let action: BlockToggle['action'] = 'block'; !stopping; action = action === 'block' ? 'unblock' : 'block') {
      const done = await toggle(pair, action);
      if (action === 'block' && done.blockedBy === pair.blocker) options.onBlocked?.(pair);
      await sleep(options.intervalMs);
    }
  };
  const running = options.pairs.map(run);
  return {
    toggles,
    stop: async () => {
      stopping = true;
      await Promise.all(running);
      for (const pair of options.pairs) {
        const last = await toggle(pair, 'unblock');
        if (last.blockedBy !== null) throw new Error(`${pair.conversationId} could not be unblocked: ${JSON.stringify(last.answers)}`);
      }
    },
  };
}
