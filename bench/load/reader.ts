import { countInto } from './bounded-parallel.js';

/**
 * The reader of a load run (`--read-rate`): GETs issued while the messages are sent, as clients refreshing
 * their screens do, each kind in turn. Against our server every GET first waits, bounded, for the read tables
 * to reach the log (`read_model_behind` 503 past the bound), so this is what prices that wait under load.
 */
export const READ_KINDS = ['messages', 'conversation', 'list'] as const;
export type ReadKind = (typeof READ_KINDS)[number];

/** The path (under the REST base URL) of the i-th read. */
export function readPath(kind: ReadKind, conversationId: unknown): string {
  const id = encodeURIComponent(String(conversationId));
  switch (kind) {
    case 'messages':
      return `/conversations/${id}/messages?limit=50`;
    case 'conversation':
      return `/conversations/${id}`;
    case 'list':
      return '/conversations';
    default: {
      const unknown: never = kind;
      throw new Error(`unknown read kind ${String(unknown)}`);
    }
  }
}

export type ReadTotals = {
  readonly sent: number;
  /** Answers by HTTP status (`200`, `503`, ...) or transport failure reason. */
  readonly answers: Record<string, number>;
  /** Issue to answer, ms, per kind; every answered GET (a 503 included: it waited its bound). */
  readonly latencies: Record<ReadKind, Float64Array>;
};

export type ReadRecorder = {
  sent(): void;
  answered(kind: ReadKind, status: number, ms: number): void;
  failed(reason: string): void;
  totals(): ReadTotals;
};

export function createReadRecorder(): ReadRecorder {
  let sent = 0;
  const answers: Record<string, number> = {};
  const samples: Record<ReadKind, number[]> = { messages: [], conversation: [], list: [] };
  return {
    sent: () => void sent++,
    answered(kind, status, ms) {
      countInto(answers, String(status));
      samples[kind].push(ms);
    },
    failed: (reason) => countInto(answers, reason),
    totals: () => ({
      sent,
      answers: { ...answers },
      latencies: {
        messages: Float64Array.from(samples.messages),
        conversation: Float64Array.from(samples.conversation),
        list: Float64Array.from(samples.list),
      },
    }),
  };
}
