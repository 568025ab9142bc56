import type { Mutant } from './mutant.js';

/**
 * Every mutant `npm run test:mutants` runs: one guarantee each, broken the way a plausible bug would break
 * it, with the test files that must catch it. docs/mutants.md explains how to add one; docs/reliability.md
 * ("Claims") maps each guarantee to its test and its mutant.
 */
export const catalogue: readonly Mutant[] = [
  // The relay (src/relay, docs/event-store.md "The relay").
  {
    name: 'relay-forgets-checkpoint',
    guarantee: 'a restarted relay goes on from its checkpoint; it does not republish the whole log',
    edits: [
      {
        file: 'src/relay/relay.ts',
        search: 'const consumer = relayCheckpointName(deps.streamName);',
        replace: 'const consumer = `${relayCheckpointName(deps.streamName)}:${process.pid}`;',
      },
      {
        file: 'src/relay/relay.ts',
        search: 'let checkpoint = await catchUpWithStream(deps, consumer, await loadCheckpoint(deps.pool, consumer));',
        replace: 'let checkpoint = await loadCheckpoint(deps.pool, consumer);',
      },
    ],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'relay-ignores-stream-position',
    guarantee: 'a relay that died between the publish ack and its checkpoint is followed from the stream\'s last position',
    edits: [
      {
        file: 'src/relay/relay.ts',
        search: 'if (!published || compareFeedPositions(published, checkpoint) <= 0) return checkpoint;',
        replace: 'if (published || compareFeedPositions(FEED_START, checkpoint) <= 0) return checkpoint;',
      },
      {
        file: 'src/relay/relay.ts',
        search: "import { compareFeedPositions, formatFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';",
        replace:
          "import { compareFeedPositions, FEED_START, formatFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';",
      },
    ],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'relay-checkpoint-unfenced',
    guarantee: 'a relay whose checkpoint another instance moved stops (compare-and-set checkpoint)',
    edits: [{ file: 'src/event-store/feed-checkpoint.ts', search: 'if (updated.rowCount !== 1) {', replace: 'if (updated.rowCount > 1) {' }],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'leader-lease-always-granted',
    guarantee: 'one relay (and one fan-out) publishes at a time: the others wait on the lease',
    edits: [
      {
        file: 'src/shared/leader-lease.ts',
        search: "'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired'",
        replace: "'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) OR true AS acquired'",
      },
    ],
    killers: ['test/integration/relay/relay-guarantees.test.ts', 'test/integration/fanout/fanout.test.ts'],
  },
  {
    name: 'standby-waits-forever-after-lost-connection',
    guarantee: 'a standby whose lease connection is lost while it waits fails its role (to be restarted) instead of waiting forever',
    edits: [
      {
        file: 'src/shared/leader-lease.ts',
        search: "      if (lost.signal.aborted) throw new Error('lease connection lost while waiting for the lease', { cause: lost.signal.reason });\n",
        replace: '',
      },
      {
        file: 'src/shared/leader-lease.ts',
        search: "throw new Error('lease connection lost while waiting for the lease', { cause: error });",
        replace: 'return { rows: [] as { acquired: boolean }[] };',
      },
    ],
    killers: ['test/integration/shared/leader-lease.test.ts'],
  },
  {
    name: 'relay-checkpoint-only-in-memory',
    guarantee: 'the relay stores its checkpoint after each acknowledged batch: an orderly stop leaves it at the last published event',
    edits: [
      {
        file: 'src/relay/relay.ts',
        search: 'await storeCheckpoint(deps.pool, consumer, checkpoint, next, { waitForFlush: false });',
        replace: 'void storeCheckpoint;',
      },
    ],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'relay-publishes-without-lease',
    guarantee: 'only the lease holder publishes: a standby relay publishes nothing until the leader is gone',
    edits: [{ file: 'src/relay/relay.ts', search: 'if (!(await deps.lease.acquire(stop))) return;', replace: 'void deps.lease.acquire;' }],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'lease-loss-unnoticed',
    guarantee: 'a relay whose lease connection is lost stops at once, and the standby carries on without a repeat',
    edits: [{ file: 'src/shared/leader-lease.ts', search: 'lost: lost.signal,', replace: 'lost: new AbortController().signal,' }],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'relay-stop-does-not-wait',
    guarantee: 'a relay stopped (SIGTERM) finishes its batch in flight and its checkpoint before it lets go of the lease and exits 0',
    edits: [{ file: 'src/relay/relay.ts', search: 'await done.catch(() => undefined);', replace: 'void done.catch(() => undefined);' }],
    killers: ['test/integration/relay/relay-guarantees.test.ts'],
  },
  {
    name: 'feed-reads-past-horizon',
    guarantee: 'the feed is commit-safe: an event committed late is never skipped behind the checkpoint',
    edits: [
      {
        file: 'src/event-store/read-feed.ts',
        search: 'AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())',
        replace: 'AND e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())',
      },
    ],
    killers: ['test/integration/event-store/feed-ordering.test.ts'],
  },

  // Commands and the event log (src/commands, src/event-store, docs/event-store.md).
  {
    name: 'command-not-retried-after-version-conflict',
    guarantee: 'a command that lost a version race is decided again on the new state (optimistic concurrency), not failed',
    edits: [
      {
        file: 'src/commands/handle-command.ts',
        search: 'if (conflict === null || attempts >= CONFLICT_ATTEMPTS) throw error;',
        replace: "if (conflict !== 'reservation' || attempts >= CONFLICT_ATTEMPTS) throw error;",
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'reservation-conflict-not-retried',
    guarantee: 'a send or a start that lost a reservation race (same client_msg_id, same pair) looks again and answers the winner, not an error',
    edits: [
      {
        file: 'src/commands/handle-command.ts',
        search: 'if (conflict === null || attempts >= CONFLICT_ATTEMPTS) throw error;',
        replace: "if (conflict !== 'version' || attempts >= CONFLICT_ATTEMPTS) throw error;",
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'batch-repeat-of-client-msg-id-not-deferred',
    guarantee: 'a client_msg_id twice in one batch of sends appends one message, and the repeat answers it',
    edits: [{ file: 'src/commands/conversation/send-plan.ts', search: "if (appending.has(mapKey)) return { kind: 'later' };", replace: '' }],
    killers: ['src/commands/conversation/send-plan.test.ts', 'test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'client-msg-id-not-reserved',
    guarantee: 'a retry with the same client_msg_id appends nothing and answers the original message',
    edits: [
      {
        file: 'src/commands/conversation/conversation-commands.ts',
        search: "command.type === 'SendMessage' && command.clientMsgId !== null",
        replace: "command.type === 'SendMessage' && command.clientMsgId === undefined",
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts', 'test/integration/gateway/rest.test.ts'],
  },
  {
    name: 'client-msg-id-conflict-answered-as-retry',
    guarantee: 'a client_msg_id used in another conversation is refused with client_msg_id_conflict (409)',
    edits: [
      {
        file: 'src/commands/conversation/send-plan.ts',
        search: 'original.conversationId === send.conversationId',
        replace: 'original.conversationId !== undefined',
      },
    ],
    killers: ['src/commands/conversation/send-plan.test.ts', 'test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'client-msg-id-length-unchecked',
    guarantee: 'a client_msg_id that is not 1..128 characters is refused with invalid_client_msg_id (400)',
    edits: [
      {
        file: 'src/commands/conversation/message-content.ts',
        search: 'length > MAX_CLIENT_MSG_ID_LENGTH ||',
        replace: 'length > MAX_CLIENT_MSG_ID_LENGTH * 8 ||',
      },
    ],
    killers: ['src/commands/conversation/message-content.test.ts', 'test/integration/gateway/rest.test.ts'],
  },
  {
    name: 'message-limit-off-by-one',
    guarantee: 'a message over 1000 code points is refused with too_long',
    edits: [
      {
        file: 'src/commands/conversation/message-content.ts',
        search: 'if (++codePoints > MAX_MESSAGE_CODE_POINTS) {',
        replace: 'if (codePoints++ > MAX_MESSAGE_CODE_POINTS) {',
      },
    ],
    killers: ['src/commands/conversation/conversation.test.ts'],
  },
  {
    name: 'stranger-may-send',
    guarantee: 'a non-participant cannot write to a conversation (the same not_found as a missing one)',
    edits: [
      {
        file: 'src/commands/conversation/conversation.ts',
        search: 'const active = visibleTo(state, command.senderId);',
        replace: "if (state.status !== 'Active') throw notFound();\n  const active = state;",
      },
    ],
    killers: ['src/commands/conversation/conversation.test.ts'],
  },

  {
    name: 'client-msg-id-control-characters-accepted',
    guarantee: 'a client_msg_id with a control character is refused with invalid_client_msg_id (400)',
    edits: [
      {
        file: 'src/commands/conversation/message-content.ts',
        search: ' || /\\p{Cc}/u.test(clientMsgId)',
        replace: '',
      },
    ],
    killers: ['src/commands/conversation/message-content.test.ts'],
  },
  {
    name: 'blank-message-accepted',
    guarantee: 'an empty or blank message (whitespace only) is refused with blank_message',
    edits: [{ file: 'src/commands/conversation/message-content.ts', search: 'if (content.trim().length === 0)', replace: 'if (content.length === 0)' }],
    killers: ['src/commands/conversation/conversation.test.ts'],
  },
  {
    name: 'event-metadata-dropped',
    guarantee: 'each event records the request that caused it (request id, traceparent) in its metadata',
    edits: [
      {
        file: 'src/commands/handle-command.ts',
        search: 'command.events.map((event) => ({ type: event.type, data: event.data, ...(command.metadata && { metadata: command.metadata }) })),',
        replace: 'command.events.map((event) => ({ type: event.type, data: event.data })),',
      },
    ],
    killers: ['test/integration/gateway/request-id.test.ts'],
  },

  {
    name: 'conversation-pair-not-reserved',
    guarantee: 'one conversation per pair of users: a start finds the pair\'s conversation, whichever user started it',
    edits: [
      {
        file: 'src/commands/conversation/reservations.ts',
        search: 'rows: [[pair.low, pair.high, conversationId]],',
        replace: 'rows: [],',
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'pair-race-loser-fails',
    guarantee: 'one conversation per pair also under concurrent creates: the start that lost the race answers the winner\'s conversation',
    edits: [
      {
        file: 'src/commands/conversation/conversation-commands.ts',
        search: '{ reservations: () => [pairReservation(pair, conversationId)] }, mode);',
        replace:
          "{ reservations: () => [pairReservation(pair, conversationId)] }, mode).catch((error: unknown) => { throw new Error('lost the race', { cause: error }); });",
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  // The projector (src/projections, docs/event-store.md "The projector").
  {
    name: 'projector-version-guard-removed',
    guarantee: 'a redelivered or repeated event (version at or below the applied one) changes nothing',
    edits: [
      {
        file: 'src/projections/conversation/apply-conversation-events.ts',
        search: 'for (const event of events) if (event.version > applied) byVersion.set(event.version, event);',
        replace: 'for (const event of events) if (event.version >= applied) byVersion.set(event.version, event);',
      },
      // Alone, the edit above is healed by the gap fill (a repeat at the start reads as a hole): docs/mutants.md.
      { file: 'src/projections/conversation/apply-conversation-events.ts', search: 'if (hole === -1) return pending;', replace: 'if (hole <= 0) return pending;' },
    ],
    killers: ['test/integration/projections/projection.test.ts'],
  },
  {
    name: 'projector-applies-across-gaps',
    guarantee: 'missing versions are read from the log and applied first: the projector never applies past a hole',
    edits: [{ file: 'src/projections/conversation/apply-conversation-events.ts', search: 'if (hole === -1) return pending;', replace: 'return pending;' }],
    killers: ['test/integration/projections/projection.test.ts'],
  },
  {
    name: 'projector-no-event-by-event-retry',
    guarantee: 'a failed batch is retried event by event, so one bad event cannot hold the others back',
    edits: [
      {
        file: 'src/projections/projector.ts',
        search: 'for (const delivery of deliveries) await handleOne(deps, delivery);',
        replace: 'for (const delivery of deliveries) await failed(deps, delivery, error);',
      },
    ],
    killers: ['test/integration/projections/projector-failures.test.ts'],
  },
  {
    name: 'projector-gives-up-at-once',
    guarantee: 'a failing event is retried with backoff (nak) before it is recorded in projection_failures',
    edits: [{ file: 'src/projections/projector.ts', search: 'if (attempts < deps.maxAttempts) {', replace: 'if (attempts < 1) {' }],
    killers: ['test/integration/projections/projector-process.test.ts'],
  },
  {
    name: 'projector-drops-failed-event',
    guarantee: 'a failing event is handed back (nak, with backoff) and applied on a later delivery once the cause is gone',
    edits: [
      {
        file: 'src/projections/projector.ts',
        search: 'message.nak(Math.min(30_000, 250 * 2 ** attempts));',
        replace: 'message.term();',
      },
    ],
    killers: ['test/integration/projections/projector-failures.test.ts'],
  },
  {
    name: 'projector-acks-before-commit',
    guarantee: 'the projector acks events only after their transaction committed (a crash loses nothing)',
    edits: [
      {
        file: 'src/projections/projector.ts',
        search: `    await projectEvents(deps, deliveries.map(({ event }) => toProjectable(event)));
    for (const { message } of deliveries) message.ack();`,
        replace: `    for (const { message } of deliveries) message.ack();
    await projectEvents(deps, deliveries.map(({ event }) => toProjectable(event)));`,
      },
    ],
    killers: ['test/integration/projections/projector-process.test.ts'],
  },

  // Blocking and deleting for everyone, read side (docs/api.md "Blocking").
  {
    name: 'projection-ignores-message-deleted',
    guarantee: 'a message deleted for everyone is a tombstone in the read tables (msg null, deleted_at set)',
    edits: [
      {
        file: 'src/projections/conversation/conversation-fold.ts',
        search: 'const inBatch = sent.find((message) => message.version === messageVersion);',
        replace: 'const inBatch = sent.find(() => false);',
      },
      { file: 'src/projections/conversation/apply-conversation-events.ts', search: 'if (changes.deletions.length > 0) {', replace: 'if (changes.deletions.length < 0) {' },
    ],
    killers: ['src/projections/conversation/conversation-fold.test.ts', 'test/integration/projections/projection.test.ts'],
  },
  {
    name: 'projection-stored-reads-not-counted-off',
    guarantee: 'unread counts are the other participant\'s messages not read yet, also after a read of messages stored before the batch',
    edits: [
      {
        file: 'src/projections/conversation/apply-conversation-events.ts',
        search: 'if (row) changes.updatedDiscussions.set(conversationId, subtractUnread(row, readerId, count));',
        replace: 'if (row) changes.updatedDiscussions.set(conversationId, row);',
      },
    ],
    killers: ['test/integration/projections/projection.test.ts'],
  },
  {
    name: 'blocked-conversation-shown-to-blocked-user',
    guarantee: 'for the blocked user a blocked conversation does not exist: left out of the list, 404 on every route',
    edits: [
      {
        file: 'src/projections/conversation/queries.ts',
        search: 'AND (blocked_by IS NULL OR blocked_by = ${userId})',
        replace: 'AND (blocked_by IS NULL OR blocked_by IS NOT NULL)',
      },
    ],
    killers: ['test/integration/gateway/block.test.ts', 'test/integration/projections/projection.test.ts'],
  },
  {
    name: 'start-conversation-ignores-block',
    guarantee: 'POST /conversations by the blocked user with the blocker\'s id answers 404 not_found',
    edits: [
      {
        file: 'src/commands/conversation/conversation-commands.ts',
        search: 'if (blockedBy !== null && blockedBy !== input.initiatorId) throw',
        replace: 'if (blockedBy === input.otherUserId && blockedBy === input.initiatorId) throw',
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'blocker-sends-after-block',
    guarantee: 'a block racing sends ends consistent: no message follows the block in the log, the blocker\'s sends are refused 403 blocked',
    edits: [
      {
        file: 'src/commands/conversation/conversation.ts',
        search: "if (active.blockedBy !== null) throw new DomainError('blocked'",
        replace: "if (active.blockedBy === -1) throw new DomainError('blocked'",
      },
    ],
    killers: ['test/integration/gateway/block.test.ts'],
  },

  // The fan-out (src/fanout, docs/delivery.md).
  {
    name: 'fanout-ignores-ack-floor',
    guarantee: 'after a fan-out restart, the events after the ack floor are republished from the log before newer ones',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'const version = await lastSurelyPublishedVersion(deps.pool, conversationId, beforeVersion, await state.ackFloor());',
        replace: 'const version = beforeVersion - 1;',
      },
    ],
    killers: ['test/integration/fanout/fanout.test.ts'],
  },
  {
    name: 'fanout-flush-failure-keeps-guard',
    guarantee: 'a failed flush sets the batch\'s conversations back, so what follows is refilled from the log',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'for (const [conversationId, progress] of before) state.progress.set(conversationId, progress);',
        replace: 'void before;',
      },
    ],
    killers: ['test/integration/fanout/fanout-flush-rollback.test.ts'],
  },
  {
    name: 'fanout-acks-failed-flush',
    guarantee: 'an event is acked only once a flush confirmed its frames reached the NATS server; a failed flush hands the batch back',
    edits: [{ file: 'src/fanout/fanout.ts', search: 'for (const message of toAck.keys()) message.nak();', replace: 'for (const message of toAck.keys()) message.ack();' }],
    killers: ['test/integration/fanout/fanout-flush-rollback.test.ts'],
  },
  {
    name: 'fanout-rolls-back-to-last-version',
    guarantee: 'a failed flush sets each conversation back to before the first version the batch published, not its last',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'if (!batch.before.has(conversationId)) batch.before.set(conversationId, progress);',
        replace: 'batch.before.set(conversationId, progress);',
      },
    ],
    killers: ['test/integration/fanout/fanout-flush-rollback.test.ts'],
  },
  {
    name: 'fanout-republishes-duplicates',
    guarantee: 'the fan-out publishes each version of a conversation once while it runs (a redelivery is skipped)',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'if (known !== undefined && event.version <= known.version) return \'duplicate\';',
        replace: 'if (known !== undefined && event.version < known.version) return \'duplicate\';',
      },
    ],
    killers: ['test/integration/fanout/fanout.test.ts'],
  },
  {
    name: 'fanout-frames-blocked-user',
    guarantee: 'while a conversation is blocked, the fan-out publishes nothing of it to its blocked user',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'eventFrame(event, { userId, blockedBy, conversation:',
        replace: 'eventFrame(event, { userId, blockedBy: null, conversation:',
      },
    ],
    killers: ['test/integration/gateway/blocking.test.ts'],
  },
  {
    name: 'fanout-take-up-forgets-block',
    guarantee: 'a fan-out that takes a conversation up (after a restart) reads the block in force from the log',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'blockedBy: version === 0 ? null : await blockAt(deps.pool, conversationId, version)',
        replace: 'blockedBy: version === 0 ? null : (await blockAt(deps.pool, conversationId, version)) && null',
      },
    ],
    killers: ['test/integration/gateway/blocking.test.ts'],
  },
  {
    name: 'fanout-rollback-keeps-block',
    guarantee: 'a failed flush sets the block the fan-out keeps back to before the batch, with the version',
    edits: [
      {
        file: 'src/fanout/fanout.ts',
        search: 'for (const [conversationId, progress] of before) state.progress.set(conversationId, progress);',
        replace:
          'for (const [conversationId, progress] of before) state.progress.set(conversationId, { version: progress.version, blockedBy: state.progress.get(conversationId)?.blockedBy ?? null });',
      },
    ],
    killers: ['test/integration/fanout/fanout-flush-rollback.test.ts'],
  },
  {
    name: 'catch-up-ignores-block',
    guarantee: "the blocked user's resume by cursor gets nothing of a blocked conversation past the block",
    edits: [
      {
        file: 'src/delivery/catch-up.ts',
        search: '        userId,\n        blockedBy,\n',
        replace: '        userId,\n        blockedBy: null,\n',
      },
    ],
    killers: ['test/integration/delivery/catch-up.test.ts', 'test/integration/gateway/blocking.test.ts'],
  },
  {
    name: 'catch-up-assumes-open-before-range',
    guarantee: 'a resume from inside a blocked span reads the block in force at its cursor from the log',
    edits: [
      {
        file: 'src/delivery/catch-up.ts',
        search: 'const blocks = await blocksBefore(connection, ranges);',
        replace: 'const blocks = new Map<string, number | null>(); void blocksBefore;',
      },
    ],
    killers: ['test/integration/delivery/catch-up.test.ts'],
  },
  {
    name: 'typing-crosses-block',
    guarantee: 'typing is refused across a block: not_found for the blocked user, blocked for the blocker',
    edits: [
      {
        file: 'src/gateway/chat-operations.ts',
        search: 'if (blockedBy === other) throw notFound();',
        replace: 'if (blockedBy === -1) throw notFound();',
      },
      {
        file: 'src/gateway/chat-operations.ts',
        search: "if (blockedBy === userId) throw new DomainError('blocked'",
        replace: "if (blockedBy === -1) throw new DomainError('blocked'",
      },
    ],
    killers: ['test/integration/gateway/blocking.test.ts'],
  },

  // The gateway's delivery (src/gateway, docs/delivery.md).
  {
    name: 'seq-guard-passes-repeats',
    guarantee: 'a socket gets each seq once: a frame whose seq is not above the last one sent is dropped',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: 'const fresh = frame.seq > (this.#lastSeq?.get(conversation) ?? 0);',
        replace: 'const fresh = frame.seq >= (this.#lastSeq?.get(conversation) ?? 0);',
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts', 'test/integration/gateway/websocket.test.ts'],
  },
  {
    // The fault suite's own mutant: one live frame lost at the gateway, which only its end-to-end audit sees.
    name: 'gateway-loses-a-live-frame',
    guarantee: 'every acknowledged message reaches both participants exactly once, in seq order, under every fault',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: "return this.#admit(frame) ? [{ kind: 'frame', text: this.#textOf(frame, text), catchUp: false }] : [];",
        replace:
          "return this.#admit(frame) && !(isEventFrame(frame) && frame.seq === 30) ? [{ kind: 'frame', text: this.#textOf(frame, text), catchUp: false }] : [];",
      },
      {
        // The same frame by the fast path: lost on either path.
        file: 'src/gateway/ws/delivery-gate.ts',
        search: 'if (last === undefined ? !this.#isFirstOfConversation(frame, previous, recoverFrom) : frame.seq !== last + 1) return [];',
        replace: 'if (frame.seq === 30 || (last === undefined ? !this.#isFirstOfConversation(frame, previous, recoverFrom) : frame.seq !== last + 1)) return [];',
      },
    ],
    killers: ['test/chaos/pipeline-faults.test.ts'],
  },
  {
    name: 'presence-kept-forever',
    guarantee: 'a user\'s presence is forgotten PRESENCE_RETENTION_DAYS after its last change, not kept in Redis forever',
    edits: [{ file: 'src/gateway/presence/presence-store.ts', search: "    redis.call('PEXPIRE', key, ARGV[3])\n", replace: '' }],
    killers: ['test/integration/security/redis-acl.test.ts'],
  },
  {
    name: 'fast-path-copy-keeps-its-own-cursor',
    guarantee: 'a resume from the cursor of a frame the fast path sent misses nothing: the cursor is the ordered position with floors',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: "return [{ kind: 'frame', text: withCursor(frame, recoverFrom, ahead), catchUp: false }];",
        replace: "return [{ kind: 'frame', text: JSON.stringify(frame), catchUp: false }];",
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts', 'test/integration/gateway/fast-path.test.ts'],
  },
  {
    name: 'resume-ignores-cursor-floors',
    guarantee: 'a resume from a cursor with floors does not send again what the client had past its position',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: `      this.#lastSeq = replay.floors.size === 0 ? null : new Map(replay.floors);
      this.#ahead = replay.floors.size === 0 ? null : new Map(replay.floors);`,
        replace: `      this.#lastSeq = null;
      this.#ahead = null;`,
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts', 'test/integration/gateway/fast-path.test.ts'],
  },
  {
    name: 'send-reuses-stale-reads-after-a-conflict',
    guarantee: 'a send decided on reads made before a conflicting commit is decided again on fresh reads: a client_msg_id taken meanwhile answers its original',
    edits: [
      {
        file: 'src/commands/conversation/conversation-commands.ts',
        search: 'attempt === 1 ? (reads ?? null) : null',
        replace: '(reads ?? null)',
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'refused-retry-misses-its-own-batch',
    guarantee: 'a sender over its rate limit still gets the original of a client_msg_id, also one the same batch just took',
    edits: [
      {
        file: 'src/commands/conversation/conversation-commands.ts',
        search: 'for (const outcome of sent) {',
        replace: 'for (const outcome of sent.slice(0, 0)) {',
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'fast-path-first-copy-ignores-what-came-before',
    guarantee: 'a first fast-path copy in a conversation goes out only when everything before it is at or before the socket\'s ordered position: per conversation, no frame overtakes an earlier one',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: 'return previous !== null && position !== null && compareFeedPositions(previous, recoverFrom) <= 0 && compareFeedPositions(position, recoverFrom) > 0;',
        replace: 'return position !== null && compareFeedPositions(position, recoverFrom) > 0;',
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts'],
  },
  {
    name: 'fast-path-first-copy-of-an-event-before-the-socket',
    guarantee: 'a fast-path copy of an event at or before the socket\'s ordered position (from before its start) is not sent',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: 'compareFeedPositions(previous, recoverFrom) <= 0 && compareFeedPositions(position, recoverFrom) > 0;',
        replace: 'compareFeedPositions(previous, recoverFrom) <= 0;',
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts'],
  },
  {
    name: 'fast-path-copy-names-a-stale-predecessor',
    guarantee: 'a fast-path copy names where its conversation\'s event before it is, also when that event is an earlier send of the same batch',
    edits: [
      {
        file: 'src/commands/handle-command.ts',
        search: '      if (last) previous = { transactionId: last.transactionId, globalPosition: last.globalPosition };\n',
        replace: '',
      },
    ],
    killers: ['test/integration/commands/conversation-commands.test.ts'],
  },
  {
    name: 'fast-path-copy-sent-without-its-predecessor',
    guarantee: 'the first message a socket gets of a conversation whose earlier events came before it goes by the fast path too (the copy says where the event before it is)',
    edits: [
      {
        file: 'src/gateway/gateway.ts',
        search: 'const copy = { ...frame, previous: previous && formatFeedPosition(previous) };',
        replace: 'const copy = { ...frame, previous: previous && null };',
      },
    ],
    killers: ['test/integration/gateway/fast-path.test.ts'],
  },
  {
    name: 'fast-path-copy-out-of-order',
    guarantee: 'the fast path sends a copy only as the next seq of its conversation: per conversation, frames in seq order',
    edits: [
      {
        file: 'src/gateway/ws/delivery-gate.ts',
        search: 'if (last === undefined ? !this.#isFirstOfConversation(frame, previous, recoverFrom) : frame.seq !== last + 1) return [];',
        replace: 'if (last === undefined ? !this.#isFirstOfConversation(frame, previous, recoverFrom) : frame.seq <= last) return [];',
      },
    ],
    killers: ['src/gateway/ws/delivery-gate.test.ts'],
  },
  {
    name: 'gateway-skips-nats-reconnect-recovery',
    guarantee: 'after the gateway\'s NATS connection comes back, every open socket is replayed from the log',
    edits: [
      {
        file: 'src/gateway/delivery-recovery.ts',
        search: `    for await (const status of statuses) {
      if (stopped) break;`,
        replace: `    for await (const status of statuses) {
      if (stopped || status) break;`,
      },
    ],
    killers: ['test/integration/gateway/nats-reconnect.test.ts'],
  },
  {
    name: 'read-consistency-wait-removed',
    guarantee: 'a GET reflects every change acknowledged before it, on whichever gateway (read-your-writes)',
    edits: [
      {
        file: 'src/projections/read-consistency.ts',
        search: 'return targets.size === 0 || waitUntilApplied(connection, targets, options);',
        replace: 'return targets.size >= 0 || waitUntilApplied(connection, targets, options);',
      },
    ],
    killers: ['test/integration/gateway/read-consistency.test.ts', 'test/integration/projections/read-consistency.test.ts'],
  },
  {
    name: 'frames-in-flight-unbounded',
    guarantee: 'a socket has at most 32 frames in flight; more are refused with their request_id',
    edits: [
      {
        file: 'src/gateway/ws/socket-session.ts',
        search: 'if (this.#inFlight >= MAX_FRAMES_IN_FLIGHT) {',
        replace: 'if (this.#inFlight >= MAX_FRAMES_IN_FLIGHT * 1000) {',
      },
    ],
    killers: ['test/integration/gateway/websocket.test.ts'],
  },

  // Authentication and Redis (src/gateway/auth, docs/security.md).
  {
    name: 'auth-refuses-everything',
    guarantee: 'a valid, unrevoked token gets in (the token fuzz must not pass by refusing everything)',
    edits: [
      {
        file: 'src/gateway/auth/verify-token.ts',
        search: 'if (!isCanonicalCompactToken(token)) throw',
        replace: 'if (token.length > 0 || !isCanonicalCompactToken(token)) throw',
      },
    ],
    killers: ['test/fuzz/token-mutations.test.ts'],
  },
  {
    name: 'send-body-refuses-everything',
    guarantee: 'a send valid by the contract is stored (the REST input fuzz cannot pass by refusing everything)',
    edits: [
      {
        file: 'src/gateway/rest/chat-routes.ts',
        search: 'parseInput(sendMessageBody, await readJsonBody(c))',
        replace: 'parseInput(sendMessageBody.refine(() => false), await readJsonBody(c))',
      },
    ],
    killers: ['test/fuzz/gateway-input.test.ts'],
  },
  {
    name: 'token-spellings-accepted',
    guarantee: 'one spelling per token: a re-spelled (revoked) token is refused',
    edits: [
      {
        file: 'src/gateway/auth/verify-token.ts',
        search: 'if (!isCanonicalCompactToken(token)) throw',
        replace: 'if (!isCanonicalCompactToken(token.replace(/[=\\s]/g, \'\'))) throw',
      },
    ],
    killers: ['test/integration/gateway/auth.test.ts', 'test/fuzz/token-mutations.test.ts'],
  },
  {
    name: 'token-any-hmac-algorithm',
    guarantee: 'HS256 only: alg none and every other algorithm are refused',
    // The key, imported for HMAC SHA-256, refuses the others too: the mutant opens both (jose given the raw secret).
    edits: [
      { file: 'src/gateway/auth/verify-token.ts', search: "algorithms: ['HS256'],", replace: "algorithms: ['HS256', 'HS384', 'HS512']," },
      { file: 'src/gateway/auth/verify-token.ts', search: 'jwtVerify(token, await key, {', replace: 'jwtVerify(token, secret, {' },
    ],
    killers: ['test/integration/gateway/auth.test.ts'],
  },
  {
    name: 'token-subject-coerced',
    guarantee: '`sub` must be a JSON string of digits: 42, ["42"] or "042" are refused',
    edits: [
      {
        file: 'src/gateway/auth/verify-token.ts',
        search: "if (typeof sub !== 'string' || !USER_ID.test(sub))",
        replace: 'if (!USER_ID.test(String(sub)))',
      },
    ],
    killers: ['test/integration/gateway/auth.test.ts'],
  },
  {
    name: 'revoked-socket-stays-open',
    guarantee: 'a revoked token\'s open sockets are closed with 4401 within 15 s',
    edits: [{ file: 'src/gateway/auth/revocation-sweep.ts', search: 'socket.revoke();', replace: 'void socket.revoke;' }],
    killers: ['test/integration/gateway/socket-revocation.test.ts'],
  },
  {
    name: 'redis-down-counts-as-revoked',
    guarantee: 'when Redis cannot say whether a token is revoked the answer is 503 unavailable, never 401',
    edits: [
      {
        file: 'src/gateway/auth/revoked-tokens.ts',
        search: "throw redisUnavailable(logger, error, 'cannot check whether the token is revoked');",
        replace: 'return error !== undefined;',
      },
    ],
    killers: ['test/integration/gateway/redis-outage.test.ts'],
  },
  {
    name: 'first-frame-redis-failure-closes-4401',
    guarantee: 'a first-frame auth that cannot be checked (Redis down) closes with 1011, not 4401',
    edits: [
      {
        file: 'src/gateway/ws/socket-session.ts',
        search: "if (error instanceof GatewayError && error.code === 'unauthorized') return this.close(CLOSE.unauthorized, error.message);",
        replace: 'if (error instanceof GatewayError) return this.close(CLOSE.unauthorized, error.message);',
      },
    ],
    killers: ['test/integration/gateway/redis-outage.test.ts'],
  },

  // Tokens in logs and least privilege on NATS and Redis (docs/security.md).
  {
    // Two of the three layers (docs/security.md "No token in any log line"): either alone keeps the known leaks out.
    name: 'client-error-logs-raw-request',
    guarantee: 'no token in any log line: a malformed request is logged by its error code, and errors by name, code, message and stack only',
    edits: [
      { file: 'src/gateway/gateway.ts', search: "logger.debug({ code: error.code }, 'malformed HTTP request');", replace: "logger.debug({ err: error }, 'malformed HTTP request');" },
      {
        file: 'src/shared/logger.ts',
        search: 'serializers: { err: safeError, error: safeError },',
        replace: 'serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },',
      },
    ],
    killers: ['test/integration/gateway/token-logging.test.ts'],
  },
  {
    // The request log with the query string, and the scrubber that would still cut the token out of it.
    name: 'request-log-keeps-query-token',
    guarantee: 'no token in any log line: requests are logged by path, without the query string a token can travel in',
    edits: [
      { file: 'src/gateway/rest/rest-app.ts', search: "logger.debug({ method: c.req.method, path: c.req.path, status:", replace: "logger.debug({ method: c.req.method, path: c.req.path, url: c.req.url, status:" },
      { file: 'src/shared/logger.ts', search: 'hooks: { streamWrite: scrubTokens },', replace: 'hooks: {},' },
    ],
    killers: ['test/integration/gateway/token-logging.test.ts'],
  },
  {
    name: 'gateway-may-publish-frames',
    guarantee: 'NATS least privilege: a gateway may not publish on the delivery subjects (only the fan-out frames events)',
    edits: [
      {
        file: 'stack/nats-permissions.ts',
        search: 'return { publish: [allSignalSubjects(prefix)], subscribe:',
        replace: 'return { publish: [allSignalSubjects(prefix), allDeliverySubjects(prefix)], subscribe:',
      },
    ],
    killers: ['test/integration/security/nats-least-privilege.test.ts'],
  },
  {
    name: 'signal-subject-carries-event-frames',
    guarantee: 'a gateway takes from the signal subject only typing, presence and fast-path copies: no other event frame',
    edits: [
      {
        file: 'src/gateway/delivery-subscriptions.ts',
        search: "const parsed = kind === 'delivery' ? eventFrameSchema.safeParse(json) : signalFrame.safeParse(json);",
        replace: "const parsed = kind === 'delivery' ? eventFrameSchema.safeParse(json) : eventFrameSchema.or(signalFrame).safeParse(json);",
      },
    ],
    killers: ['test/integration/security/nats-least-privilege.test.ts'],
  },
  {
    name: 'fanout-may-publish-events',
    guarantee: 'NATS least privilege: only the relay publishes into the events stream',
    edits: [
      {
        file: 'stack/nats-permissions.ts',
        search: 'allDeliverySubjects(prefix), // the only publisher of event frames',
        replace: 'allDeliverySubjects(prefix), // the only publisher of event frames\n          allEventsSubject(prefix),',
      },
    ],
    killers: ['test/integration/security/nats-least-privilege.test.ts'],
  },
  {
    name: 'gateway-redis-writes-revocations',
    guarantee: "Redis ACL: the gateway's user may read blacklist:* but not write it (a script could expire a revocation early)",
    edits: [{ file: 'stack/redis-acl.ts', search: "'%R~blacklist:*',", replace: "'~blacklist:*'," }],
    killers: ['test/integration/security/redis-acl.test.ts'],
  },
  {
    name: 'gateway-redis-any-key',
    guarantee: "Redis ACL: the gateway's user reaches only keys under its prefix",
    // Every key: Redis refuses a pattern after `~*`, so the read-only `blacklist:*` goes with it.
    edits: [
      { file: 'stack/redis-acl.ts', search: '`~${keyPrefix}*`,', replace: "'~*'," },
      { file: 'stack/redis-acl.ts', search: "    '%R~blacklist:*',\n", replace: '' },
    ],
    killers: ['test/integration/security/redis-acl.test.ts'],
  },
  {
    name: 'notifier-redis-any-channel',
    guarantee: "Redis ACL: the notifier's user publishes only on its channel",
    edits: [{ file: 'stack/redis-acl.ts', search: '`&${channel}`,', replace: "'&*'," }],
    killers: ['test/integration/security/redis-acl.test.ts'],
  },
  // Limits (docs/security.md "Limits").
  {
    name: 'rate-limit-doubled',
    guarantee: 'at most RATE_LIMIT_*_PER_MINUTE attempts per user and minute, across gateways',
    edits: [
      {
        file: 'src/gateway/rate-limit.ts',
        search: "if redis.call('ZCARD', key) < limit then",
        replace: "if redis.call('ZCARD', key) < limit * 2 then",
      },
    ],
    killers: ['test/integration/gateway/rate-limits.test.ts'],
  },
  {
    name: 'rate-limit-per-gateway',
    guarantee: 'one budget per user across all gateways (the counters are shared in Redis, not per gateway)',
    edits: [
      {
        file: 'src/gateway/rate-limit.ts',
        search: 'const windowMs = deps.windowMs ?? 60_000;',
        replace: 'const windowMs = deps.windowMs ?? 60_000;\n  const instance = randomUUID();',
      },
      {
        file: 'src/gateway/rate-limit.ts',
        search: 'const keys = userIds.map((userId) => `${deps.keyPrefix}ratelimit:${deps.name}:${userId}`);',
        replace: 'const keys = userIds.map((userId) => `${deps.keyPrefix}ratelimit:${deps.name}:${instance}:${userId}`);',
      },
    ],
    killers: ['test/integration/gateway/rate-limits.test.ts'],
  },
  {
    name: 'rate-limit-charges-retries',
    guarantee: 'only appended messages count against the send limit: a retry of a stored message is free',
    edits: [
      {
        file: 'src/gateway/chat-operations.ts',
        search: "if (result.status === 'rejected' || !result.value.created) refunds.push(allowance);",
        replace: "if (result.status === 'rejected') refunds.push(allowance);",
      },
    ],
    killers: ['test/integration/gateway/rate-limits.test.ts'],
  },

  {
    name: 'sockets-per-user-uncapped',
    guarantee: 'at most MAX_SOCKETS_PER_USER sockets per user across all gateways (429 / 4429 beyond)',
    edits: [
      {
        file: 'src/gateway/socket-leases.ts',
        search: "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end",
        replace: "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) * 100 then return 0 end",
      },
    ],
    killers: ['test/integration/gateway/socket-cap-across-gateways.test.ts'],
  },
  {
    name: 'typing-throttle-loosened',
    guarantee: 'typing is forwarded at most 2 times a second per sender and conversation',
    edits: [
      {
        file: 'src/gateway/ws/typing-throttle.ts',
        search: 'if (recent.length >= options.perInterval) return false;',
        replace: 'if (recent.length > options.perInterval) return false;',
      },
    ],
    killers: ['src/gateway/ws/typing-throttle.test.ts'],
  },
  {
    name: 'catch-up-limit-doubled',
    guarantee: 'a replay of more than WS_CATCH_UP_LIMIT events answers resync_required instead',
    edits: [{ file: 'src/delivery/catch-up.ts', search: "if (total > limit) return 'resync_required';", replace: "if (total > limit * 2) return 'resync_required';" }],
    killers: ['test/integration/delivery/catch-up.test.ts'],
  },

  {
    name: 'frame-size-unbounded',
    guarantee: 'a client frame over WS_MAX_FRAME_BYTES closes the socket with 1009',
    edits: [{ file: 'src/gateway/ws/socket-server.ts', search: 'maxPayload: deps.maxFrameBytes,', replace: 'maxPayload: deps.maxFrameBytes * 64,' }],
    killers: ['test/integration/gateway/websocket.test.ts'],
  },
  {
    name: 'body-limit-raised',
    guarantee: 'a REST body over HTTP_BODY_LIMIT_BYTES gets 413',
    edits: [{ file: 'src/gateway/rest/rest-app.ts', search: 'maxSize: deps.bodyLimitBytes,', replace: 'maxSize: deps.bodyLimitBytes * 64,' }],
    killers: ['test/integration/gateway/rest.test.ts'],
  },
  {
    name: 'slow-reader-never-closed',
    guarantee: 'more than WS_SEND_QUEUE_BYTES of unsent live frames closes the socket with 4008',
    edits: [
      {
        file: 'src/gateway/ws/socket-writer.ts',
        search: 'if (!patient && this.#unsentLiveBytes() + bytes > this.#maxUnsentBytes) return false;',
        replace: 'if (!patient && this.#unsentLiveBytes() + bytes > this.#maxUnsentBytes * 1024) return false;',
      },
    ],
    killers: ['src/gateway/ws/socket-writer.test.ts'],
  },
  {
    name: 'sockets-per-gateway-uncapped',
    guarantee: 'a gateway holding WS_MAX_SOCKETS sockets answers further upgrades with 503',
    edits: [{ file: 'src/gateway/ws/socket-server.ts', search: 'if (sessions.size >= deps.maxSockets) {', replace: 'if (sessions.size > deps.maxSockets) {' }],
    killers: ['test/integration/gateway/socket-caps.test.ts'],
  },

  // Operating it (README.md "Configuration", "Operating it").
  {
    name: 'config-error-hides-variable',
    guarantee: 'a bad configuration stops the role with a message naming the variable',
    edits: [
      {
        file: 'src/shared/config.ts',
        search: 'throw new ConfigError(`invalid configuration:\\n${z.prettifyError(parsed.error)}`);',
        replace: "throw new ConfigError(`invalid configuration:\\n${parsed.error.issues.map((issue) => issue.message).join('\\n')}`);",
      },
    ],
    killers: ['test/integration/ops/config-errors.test.ts'],
  },
  {
    name: 'ops-port-on-every-address',
    guarantee: 'the ops port (/health, /ready, /metrics) listens on loopback unless OPS_HOST says otherwise',
    edits: [{ file: 'src/shared/config.ts', search: ".default('127.0.0.1')", replace: ".default('0.0.0.0')" }],
    killers: ['test/integration/ops/ops-endpoints.test.ts'],
  },
  {
    name: 'development-secret-without-node-env',
    guarantee: 'an unset NODE_ENV counts as production: the gateway refuses to start without a real JWT_SECRET',
    edits: [
      {
        file: 'src/shared/config.ts',
        search: "if (config.NODE_ENV === 'development' || config.NODE_ENV === 'test') return;",
        replace: "if (config.NODE_ENV !== 'production') return;",
      },
    ],
    killers: ['test/integration/gateway/secrets.test.ts'],
  },
  {
    name: 'ready-always-200',
    guarantee: '/ready answers 503 when a dependency does not answer',
    edits: [{ file: 'src/shared/ops-server.ts', search: 'reply(ready ? 200 : 503,', replace: 'reply(200,' }],
    killers: ['test/integration/ops/ops-endpoints.test.ts'],
  },
  {
    name: 'ready-ignores-nats-outage',
    guarantee: '/ready answers 503 naming NATS while the role\'s NATS connection is down, and 200 once it is back',
    edits: [{ file: 'src/shared/readiness.ts', search: 'await nc.flush();', replace: 'await Promise.resolve();' }],
    killers: ['test/integration/ops/readiness.test.ts'],
  },
  {
    name: 'ready-ignores-postgres-outage',
    guarantee: '/ready answers 503 naming Postgres while Postgres cannot be reached, and 200 once it is back',
    edits: [
      {
        file: 'src/shared/readiness.ts',
        search: 'probe: () => pool.query(sql.unsafe`SELECT 1`),',
        replace: 'probe: () => Promise.resolve(sql),',
      },
    ],
    killers: ['test/integration/ops/readiness.test.ts'],
  },
  {
    name: 'fanout-leader-gauge-never-set',
    guarantee: 'the gauges the alert rules rely on carry live values (chat_fanout_leader is 1 on the active fan-out)',
    edits: [{ file: 'src/fanout/fanout.ts', search: 'deps.metrics.leader(true);', replace: 'void deps.metrics;' }],
    killers: ['test/integration/ops/operators-pack.test.ts'],
  },
  {
    name: 'nats-first-connect-fails',
    guarantee: 'a role started before NATS waits for the server instead of failing its first connect',
    edits: [{ file: 'src/shared/nats.ts', search: 'waitOnFirstConnect: true,', replace: 'waitOnFirstConnect: false,' }],
    killers: ['test/integration/shared/nats-first-connect.test.ts'],
  },
  {
    name: 'relay-without-process-hygiene',
    guarantee: 'an error nothing caught in a role: one fatal log line with the error, the role\'s shutdown, exit code 1',
    edits: [
      {
        file: 'src/relay/main.ts',
        search: 'const hygiene = installProcessHygiene({ logger });',
        replace: 'const hygiene = { shutDownWith: (shutdown) => void shutdown };',
      },
    ],
    killers: ['test/integration/shared/process-hygiene.test.ts'],
  },
  {
    name: 'migration-checksum-ignored',
    guarantee: 'migrate refuses to run when an applied migration file was edited, naming it and both checksums',
    edits: [
      {
        file: 'src/shared/migrate.ts',
        search: 'if (checksum === undefined || checksum === null || checksum === migration.checksum) continue;',
        replace: 'continue;',
      },
    ],
    killers: ['test/integration/migrate/migrate.test.ts'],
  },
  {
    name: 'npm-start-never-restarts',
    guarantee: '`npm start` starts again (with backoff) every role that dies, and the stack stays up',
    edits: [
      {
        file: 'stack/supervisor.ts',
        search: `      case 'spawn':
        spawnRole(entry);`,
        replace: `      case 'spawn':
        void spawnRole;`,
      },
    ],
    killers: ['test/integration/stack/npm-start.test.ts'],
  },

  // Draining a gateway on SIGTERM (README.md "Operating it", docs/delivery.md).
  {
    name: 'drain-ready-stays-200',
    guarantee: 'a draining gateway answers /ready 503 first, so the load balancer stops sending it clients',
    edits: [
      {
        file: 'src/gateway/main.ts',
        search: "{ name: 'readiness', close: () => Promise.resolve(draining.start()) },",
        replace: "{ name: 'readiness', close: () => Promise.resolve() },",
      },
    ],
    killers: ['test/integration/gateway/drain.test.ts'],
  },
  {
    name: 'drain-no-load-balancer-delay',
    guarantee: 'a draining gateway keeps serving for SHUTDOWN_READY_DELAY_MS after /ready turned 503',
    edits: [
      {
        file: 'src/gateway/main.ts',
        search: 'close: () => sleep(config.SHUTDOWN_READY_DELAY_MS),',
        replace: 'close: () => sleep(0),',
      },
    ],
    killers: ['test/integration/gateway/drain.test.ts'],
  },
  {
    name: 'drain-closes-all-at-once',
    guarantee: 'a draining gateway closes its sockets a few at a time over WS_DRAIN_WINDOW_MS, not all at once',
    edits: [{ file: 'src/gateway/ws/socket-server.ts', search: 'drainSchedule(open.length, windowMs)', replace: 'drainSchedule(open.length, 0)' }],
    killers: ['test/integration/gateway/drain.test.ts'],
  },
  {
    name: 'drain-close-code-1001',
    guarantee: 'a draining gateway closes its sockets with 1012 (service restart: reconnect elsewhere), not 1001',
    edits: [{ file: 'src/gateway/ws/server-frames.ts', search: 'serviceRestart: 1012,', replace: 'serviceRestart: 1001,' }],
    killers: ['test/integration/gateway/drain.test.ts'],
  },

  // Rebuilding the read tables (src/replay, docs/event-store.md "Generations and the replay CLI").
  {
    name: 'replay-verify-always-equal',
    guarantee: '`replay --verify` reports every row that differs between the live and the rebuilt tables',
    edits: [
      {
        file: 'src/replay/compare-tables.ts',
        search: 'WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(r)',
        replace: 'WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(r) AND false',
      },
    ],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-verify-counts-nothing',
    guarantee: '`replay --verify` counts the rows that differ: tables that differ are not taken for equal',
    edits: [{ file: 'src/replay/compare-tables.ts', search: 'counts[table] = rows[0]?.total ?? 0;', replace: 'counts[table] = 0;' }],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-verify-exits-zero',
    guarantee: '`replay --verify` exits 1 when the tables differ',
    edits: [
      {
        file: 'src/replay/main.ts',
        search: 'if (result.comparison.counts.discussion + result.comparison.counts.messages > 0) exitCode = 1;',
        replace: 'void result.comparison.counts;',
      },
    ],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-switches-despite-differences',
    guarantee: '`replay --verify` does not switch reads to rebuilt tables that differ from the live ones (unless --force)',
    edits: [
      {
        file: 'src/replay/rebuild-projection.ts',
        search: 'if (!options.switchReads || (!equal && !options.force))',
        replace: 'if (!options.switchReads)',
      },
    ],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-force-ignored',
    guarantee: '`replay --verify --force` switches reads despite the differences',
    edits: [{ file: 'src/replay/rebuild-projection.ts', search: '(!equal && !options.force)', replace: '(!equal)' }],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-no-switch-ignored',
    guarantee: '`replay --no-switch` builds (and verifies) only; reads stay on the live tables',
    edits: [{ file: 'src/replay/replay-arguments.ts', search: "switchReads: !values['no-switch'],", replace: 'switchReads: true,' }],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-restart-ignored',
    guarantee: '`replay --restart` drops a half-built generation and builds a new one from the start',
    edits: [
      {
        file: 'src/replay/rebuild-projection.ts',
        search: 'if (building !== null && !options.restart)',
        replace: 'if (building !== null)',
      },
    ],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-busy-exits-1',
    guarantee: 'a second replay of a projection while one runs is refused with exit code 3',
    edits: [{ file: 'src/replay/main.ts', search: 'exitCode = error instanceof ReplayBusyError ? 3 : 1;', replace: 'exitCode = 1;' }],
    killers: ['test/integration/replay/replay-options.test.ts'],
  },
  {
    name: 'replay-resume-starts-over',
    guarantee: 'a replay killed midway is resumed from its last committed batch, in the same generation',
    edits: [
      {
        file: 'src/replay/rebuild-projection.ts',
        search: '  if (building !== null && !options.restart) return { generation: building, resumed: true };\n',
        replace: '',
      },
    ],
    killers: ['test/integration/replay/replay.test.ts'],
  },
  {
    name: 'replay-skips-final-catch-up',
    guarantee: 'a replay rebuilds tables equal to the live ones: what was appended during the build is caught up before the switch',
    edits: [
      {
        file: 'src/replay/rebuild-projection.ts',
        search: 'const batch = await readFeed(transaction, { after: position, limit: options.batchSize });',
        replace: 'const batch: RecordedEvent[] = [];',
      },
    ],
    killers: ['test/integration/replay/replay.test.ts'],
  },
  // Delete for everyone (docs/event-store.md "Erasure").
  {
    name: 'delete-leaves-text-in-log',
    guarantee: "a delete for everyone erases the original's text from the log in the delete's transaction",
    edits: [
      {
        file: 'src/commands/conversation/delete-message.ts',
        search: "if (event.type !== 'MessageDeleted') continue;",
        replace: "if (event.type !== 'MessageDeleted' || event.version > 0) continue;",
      },
    ],
    killers: ['test/integration/commands/delete-message.test.ts'],
  },
  {
    // The fault suite's own: only its per-user audit of every delete under load sees the frame missing.
    name: 'delete-frame-to-sender-only',
    guarantee: 'a delete for everyone reaches both participants as message_deleted, under every fault',
    edits: [
      {
        file: 'src/delivery/event-frames.ts',
        search: 'const deletedAt = isoMs(domainEvent.data.deleted_at);',
        replace: 'if (recipient.userId !== domainEvent.data.deleted_by) return null;\n      const deletedAt = isoMs(domainEvent.data.deleted_at);',
      },
    ],
    killers: ['test/chaos/pipeline-faults.test.ts'],
  },
  {
    name: 'relay-skips-stream-erasure',
    guarantee: "the relay deletes a deleted message's copies from the events stream",
    edits: [
      {
        file: 'src/relay/relay.ts',
        search: 'if ((await eraseFromStream(deps, checkpoint)).waiting) erasuresDue = true;',
        replace: 'if (checkpoint.globalPosition < 0n && (await eraseFromStream(deps, checkpoint)).waiting) erasuresDue = true;',
      },
    ],
    killers: ['test/integration/gateway/delete-for-everyone.test.ts'],
  },
  {
    name: 'stream-erasure-before-delete-published',
    guarantee: "the relay erases a copy only once its checkpoint passed the delete: a stale read published later is erased too",
    edits: [
      {
        file: 'src/event-store/event-erasures.ts',
        search: '<= (${upTo.transactionId.toString()}::xid8, ${upTo.globalPosition.toString()}::bigint)',
        replace: '<= (d.transaction_id, d.global_position) AND ${upTo.globalPosition} >= 0',
      },
    ],
    killers: ['test/integration/relay/stream-erasure.test.ts'],
  },
];
