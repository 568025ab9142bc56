import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS_SECONDS } from '../shared/metrics.js';
import type { VerifyToken } from './auth/verify-token.js';
import { GatewayError } from './errors.js';
import { isAllowance, type RateLimiter } from './rate-limit.js';

export type GatewayMetrics = {
  /** Reads the open sockets when Prometheus scrapes. */
  watchSockets(count: () => number): void;
  /** A frame reached this gateway from the fan-out; `sentAt` is the message's send time (ISO). */
  delivered(sentAt: string): void;
  /** A fast-path copy reached this gateway for a user with sockets here: written to one of them, or left to the ordered path. */
  fastPathCopy(written: boolean): void;
  messagesAccepted(count: number): void;
  /** A REST answer went out with `status`. */
  responded(status: number): void;
  /** A transaction of `size` sends started. */
  sendBatch(size: number): void;
  /** Wraps a verifier so every refused token is counted by reason. */
  countAuthFailures(verify: VerifyToken): VerifyToken;
  /** Wraps a rate limiter so every refusal is counted, labelled with the limit's name. */
  countRateLimited(limit: string, limiter: RateLimiter): RateLimiter;
  /** One pass of the revocation sweep: tokens checked, Redis round trips, sockets closed. */
  revocationSweep(pass: { readonly keys: number; readonly roundTrips: number; readonly revoked: number }): void;
};

/** Bounded label values for auth failures, from the verifier's messages (verify-token.ts). */
const AUTH_REASONS: readonly [RegExp, string][] = [
  [/expired/, 'expired'],
  [/signature/, 'bad_signature'],
  [/algorithm/, 'algorithm'],
  [/revoked/, 'revoked'],
  [/X-User-ID/, 'user_id_mismatch'],
  [/not valid yet/, 'not_yet_valid'],
];

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  let sockets = () => 0;
  new Gauge({
    name: 'chat_gateway_sockets',
    help: 'open WebSockets on this gateway',
    registers: [registry],
    collect() {
      this.set(sockets());
    },
  });
  const accepted = new Counter({ name: 'chat_messages_accepted_total', help: 'messages appended to the log (REST and WS)', registers: [registry] });
  const latency = new Histogram({
    name: 'chat_send_to_delivery_seconds',
    help: 'from a message being sent (its timestamp) to its frame reaching a gateway holding a recipient socket',
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [registry],
  });
  const fastPathCopies = new Counter({
    name: 'chat_fast_path_copies_total',
    help: 'fast-path copies of new messages received for a user with sockets here: written (to at least one socket), or left to the ordered path (not the next seq of a conversation a socket knows)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'chat_auth_failures_total',
    help: 'refused tokens, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const sendBatches = new Histogram({
    name: 'chat_send_batch_size',
    help: 'sends appended in one transaction (group commit: grows with the load)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'chat_rate_limited_total',
    help: 'attempts refused by a per-user rate limit, by limit',
    labelNames: ['limit'],
    registers: [registry],
  });
  const responses = new Counter({
    name: 'chat_http_responses_total',
    help: 'REST answers, by status class (2xx, 4xx, 5xx)',
    labelNames: ['code_class'],
    registers: [registry],
  });
  const sweptTokens = new Counter({ name: 'chat_revocation_checks_total', help: 'open sockets\' tokens checked against revocations', registers: [registry] });
  const sweepRoundTrips = new Counter({ name: 'chat_revocation_round_trips_total', help: 'Redis round trips of the revocation sweep', registers: [registry] });
  const revokedSockets = new Counter({ name: 'chat_revoked_sockets_total', help: 'open sockets closed because their token was revoked', registers: [registry] });

  return {
    watchSockets(count) {
      sockets = count;
    },
    delivered(sentAt) {
      const at = Date.parse(sentAt);
      if (Number.isFinite(at)) latency.observe(Math.max(0, Date.now() - at) / 1_000);
    },
    fastPathCopy: (written) => fastPathCopies.inc({ outcome: written ? 'written' : 'left_to_ordered_path' }),
    messagesAccepted: (count) => accepted.inc(count),
    responded: (status) => responses.inc({ code_class: `${Math.floor(status / 100)}xx` }),
    revocationSweep(pass) {
      sweptTokens.inc(pass.keys);
      sweepRoundTrips.inc(pass.roundTrips);
      revokedSockets.inc(pass.revoked);
    },
    sendBatch: (size) => sendBatches.observe(size),
    countAuthFailures(verify) {
      return async (token, options) => {
        try {
          return await verify(token, options);
        } catch (error) {
          if (error instanceof GatewayError && error.code === 'unauthorized') {
            authFailures.inc({ reason: AUTH_REASONS.find(([pattern]) => pattern.test(error.message))?.[1] ?? 'invalid' });
          }
          throw error;
        }
      };
    },
    countRateLimited(limit, limiter) {
      return {
        ...limiter,
        async consumeEach(userIds) {
          const results = await limiter.consumeEach(userIds);
          const refused = results.filter((result) => !isAllowance(result)).length;
          if (refused > 0) rateLimited.inc({ limit }, refused);
          return results;
        },
        async consume(userId) {
          try {
            return await limiter.consume(userId);
          } catch (error) {
            if (error instanceof GatewayError && error.code === 'rate_limited') rateLimited.inc({ limit });
            throw error;
          }
        },
      };
    },
  };
}
