import { ChatClient, type CursorStore, type Message, type NewMessageFrame } from '../client/src/index.js';
import { partnerOf, withConversations, withoutConversation, emptyConversationList, type Conversation } from './conversation-list.js';
import { fetchDemoToken } from './demo-token.js';
import {
  emptyThread,
  oldestMessageId,
  withComplete,
  withDeleted,
  withFailedSend,
  withMessages,
  withPending,
  withReadBy,
  type ShownMessage,
  type Thread,
} from './thread.js';
import { byTestId, render, type PageState, type Presence } from './view.js';

/** The longest wait between reconnect attempts. */
const RECONNECT_MAX_MS = 3_000;
/** A page of messages, newest first (REST), unless the page's URL asks for another size. */
export const DEFAULT_PAGE_SIZE = 30;
/** A partner's `typing` that is not followed by another (or by `is_typing: false`) fades after this. */
const TYPING_SHOWN_MS = 6_000;
/** A typing start the server held back (its limit is two a second) is sent again after this. */
const TYPING_HELD_BACK_RETRY_MS = 600;
/** Our own typing signal is withdrawn after this long without a keystroke. */
const TYPING_IDLE_MS = 2_500;

/** A REST or ack Message; one without `seq` (an older server) waits for its `new_message` frame instead. */
const fromApi = (messages: readonly Message[]): ShownMessage[] =>
  messages.flatMap((message) =>
    message.seq === undefined
      ? []
      : [
          {
            id: message.id,
            seq: message.seq,
            senderId: message.sender_id,
            text: message.msg,
            sentAt: message.time,
            readAt: message.read_at,
            deletedAt: message.deleted_at,
            clientMsgId: message.client_msg_id,
          },
        ],
  );

const fromFrame = (frame: NewMessageFrame): ShownMessage => ({
  id: frame.data.id,
  seq: frame.seq,
  senderId: frame.data.sender_id,
  text: frame.data.message,
  sentAt: frame.data.timestamp,
  readAt: frame.data.read_at,
  deletedAt: null,
  clientMsgId: frame.data.client_msg_id,
});

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const report = (what: string) => (error: unknown) => console.warn(what, describe(error));

function cursorStore(me: number): CursorStore {
  const key = `matcha-demo-cursor-${me}`;
  return { load: () => sessionStorage.getItem(key), save: (cursor) => sessionStorage.setItem(key, cursor) };
}

/**
 * The signed-in page: one ChatClient for user `me`, its frames and REST answers folded into the page's
 * state (conversation-list.ts, thread.ts), rendered after each change (view.ts).
 */
export function startSession(me: number, options: { readonly pageSize: number }): void {
  const { pageSize } = options;
  const client = new ChatClient({
    baseUrl: location.origin,
    getToken: () => fetchDemoToken(me),
    cursorStore: cursorStore(me),
    // A development gateway restarts in seconds: come back soon after.
    backoff: { maxMs: RECONNECT_MAX_MS },
  });

  let state: PageState = { me, connection: client.state, conversations: emptyConversationList, presence: new Map(), thread: null, partnerTyping: false };
  /** Threads of conversations opened before: their messages and pending sends outlive switching away. */
  const threads = new Map<string, Thread>();
  /** Refetches of one conversation, in order: the last one to answer is the newest. */
  const refreshes = new Map<string, Promise<void>>();
  let partnerTypingTimer: ReturnType<typeof setTimeout> | undefined;
  let ownTyping: { conversationId: string; timer: ReturnType<typeof setTimeout> } | undefined;

  const showError = (testId: string) => (error: unknown) => {
    const node = byTestId(testId);
    node.hidden = false;
    node.textContent = describe(error);
  };
  const clearError = (testId: string) => {
    byTestId(testId).hidden = true;
  };

  const actions = {
    open: (conversationId: string) => void open(conversationId),
    deleteMessage: (messageId: string) => void deleteMessage(messageId).catch(showError('send-error')),
  };
  const update = (change: Partial<PageState>): void => {
    state = { ...state, ...change };
    if (state.thread) threads.set(state.thread.conversationId, state.thread);
    render(state, actions);
  };
  /** Applies `change` to the thread of `conversationId`, shown or not. */
  const updateThread = (conversationId: string, change: (thread: Thread) => Thread): void => {
    const current = state.thread?.conversationId === conversationId ? state.thread : threads.get(conversationId);
    if (!current) return;
    const next = change(current);
    threads.set(conversationId, next);
    if (state.thread?.conversationId === conversationId) update({ thread: next });
  };

  async function refreshPresence(conversations: readonly Conversation[]): Promise<void> {
    const userIds = [...new Set(conversations.filter((c) => c.blocked_by === null).map((c) => partnerOf(c, me)))].slice(0, 100);
    if (userIds.length === 0) return;
    const answers = await client.rest.presence(userIds);
    const presence = new Map(state.presence);
    for (const answer of answers) presence.set(answer.user_id, { online: answer.online, lastSeenAt: answer.last_seen_at });
    update({ presence });
  }

  async function reloadConversations(): Promise<void> {
    const conversations = await client.rest.listConversations();
    update({ conversations: withConversations(emptyConversationList, conversations) });
    if (state.thread && !state.conversations.has(state.thread.conversationId)) update({ thread: null });
    await refreshPresence(conversations);
  }

  function refreshConversation(conversationId: string): void {
    const previous = refreshes.get(conversationId) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        const conversation = await client.rest.getConversation(conversationId);
        update({ conversations: withConversations(state.conversations, [conversation]) });
      } catch (error) {
        // 404: blocked by the other participant; the conversation_removed frame closes it.
        console.warn('could not refresh conversation', conversationId, describe(error));
      }
    });
    refreshes.set(conversationId, next);
  }

  async function loadLatestMessages(conversationId: string): Promise<void> {
    const page = await client.rest.listMessages(conversationId, { limit: pageSize });
    updateThread(conversationId, (thread) => {
      const merged = withMessages(thread, fromApi(page));
      return page.length < pageSize && thread.messages.size === 0 ? withComplete(merged) : merged;
    });
  }

  async function loadOlderMessages(): Promise<void> {
    const thread = state.thread;
    if (!thread) return;
    const before = oldestMessageId(thread);
    const page = await client.rest.listMessages(thread.conversationId, before === undefined ? { limit: pageSize } : { limit: pageSize, before });
    updateThread(thread.conversationId, (current) => {
      const merged = withMessages(current, fromApi(page));
      return page.length < pageSize ? withComplete(merged) : merged;
    });
  }

  async function open(conversationId: string): Promise<void> {
    const thread = threads.get(conversationId) ?? emptyThread(conversationId);
    clearTimeout(partnerTypingTimer);
    update({ thread, partnerTyping: false });
    await loadLatestMessages(conversationId);
    if ((state.conversations.get(conversationId)?.unread_count ?? 0) > 0) markRead(conversationId);
    const conversation = state.conversations.get(conversationId);
    if (conversation) await refreshPresence([conversation]);
  }

  function send(text: string): void {
    const thread = state.thread;
    if (!thread || text.trim() === '') return;
    stopTyping();
    const clientMsgId = crypto.randomUUID();
    const conversationId = thread.conversationId;
    updateThread(conversationId, (current) => withPending(current, clientMsgId, text));
    client.sendMessage(conversationId, text, { clientMsgId }).then(
      (message) => updateThread(conversationId, (current) => withMessages(current, fromApi([message]))),
      (error: unknown) => updateThread(conversationId, (current) => withFailedSend(current, clientMsgId, describe(error))),
    );
  }

  async function deleteMessage(messageId: string): Promise<void> {
    const answer = await client.rest.deleteMessage(messageId);
    updateThread(answer.conv_id, (thread) => withDeleted(thread, answer.id, answer.deleted_at));
    refreshConversation(answer.conv_id);
  }

  async function toggleBlock(): Promise<void> {
    const conversation = state.thread && state.conversations.get(state.thread.conversationId);
    if (!conversation) return;
    const changed = conversation.blocked_by === me ? await client.rest.unblock(conversation.id) : await client.rest.block(conversation.id);
    update({ conversations: withConversations(state.conversations, [changed]) });
  }

  async function start(partnerId: number): Promise<void> {
    const { conversation } = await client.rest.startConversation(partnerId);
    update({ conversations: withConversations(state.conversations, [conversation]) });
    await open(conversation.id);
  }

  const markRead = (conversationId: string): void => void client.markRead(conversationId).catch(report('could not mark read'));
  // Typing needs an open socket (the client refuses it otherwise): a signal lost offline is stale anyway.
  // The server forwards at most two signals a second: a start it held back goes again while we still type.
  const signalTyping = (conversationId: string, isTyping: boolean): void =>
    void client
      .typing(conversationId, isTyping)
      .then((forwarded) => {
        if (forwarded || !isTyping) return;
        setTimeout(() => {
          if (ownTyping?.conversationId === conversationId) signalTyping(conversationId, true);
        }, TYPING_HELD_BACK_RETRY_MS);
      })
      .catch(() => undefined);

  function typed(): void {
    const conversationId = state.thread?.conversationId;
    if (conversationId === undefined) return;
    if (ownTyping?.conversationId !== conversationId) {
      stopTyping();
      signalTyping(conversationId, true);
    } else {
      clearTimeout(ownTyping.timer);
    }
    ownTyping = { conversationId, timer: setTimeout(stopTyping, TYPING_IDLE_MS) };
  }

  function stopTyping(): void {
    if (!ownTyping) return;
    clearTimeout(ownTyping.timer);
    signalTyping(ownTyping.conversationId, false);
    ownTyping = undefined;
  }

  client.on('state', (connection) => update({ connection }));
  client.on('connected', () => {
    // A first connect or a reconnect: the list and the open thread from REST, merged with what frames brought.
    reloadConversations().catch(report('could not load the conversations'));
    if (state.thread) loadLatestMessages(state.thread.conversationId).catch(report('could not load messages'));
  });
  client.on('resync_required', () => {
    reloadConversations().catch(report('could not load the conversations'));
    if (state.thread) loadLatestMessages(state.thread.conversationId).catch(report('could not load messages'));
  });
  client.on('new_message', (frame) => {
    updateThread(frame.conversation_id, (thread) => withMessages(thread, [fromFrame(frame)]));
    const shown = state.thread?.conversationId === frame.conversation_id;
    if (shown && frame.data.sender_id !== me) {
      clearTimeout(partnerTypingTimer);
      update({ partnerTyping: false });
      if (document.visibilityState === 'visible') markRead(frame.conversation_id);
    }
    refreshConversation(frame.conversation_id);
  });
  client.on('messages_read', (frame) => {
    updateThread(frame.conversation_id, (thread) => withReadBy(thread, frame.data.reader_id, frame.data.read_at, frame.seq));
    refreshConversation(frame.conversation_id);
  });
  client.on('message_deleted', (frame) => {
    updateThread(frame.conversation_id, (thread) => withDeleted(thread, frame.data.id, frame.data.deleted_at));
    refreshConversation(frame.conversation_id);
  });
  for (const type of ['conversation_created', 'conversation_blocked', 'conversation_unblocked', 'conversation_restored'] as const) {
    client.on(type, (frame) => {
      refreshConversation(frame.conversation_id);
      refreshPresence([frame.data]).catch(report('could not load presence'));
    });
  }
  client.on('conversation_removed', (frame) => {
    threads.delete(frame.conversation_id);
    update({
      conversations: withoutConversation(state.conversations, frame.conversation_id),
      ...(state.thread?.conversationId === frame.conversation_id && { thread: null }),
    });
  });
  client.on('typing', (frame) => {
    if (state.thread?.conversationId !== frame.conversation_id || frame.data.user_id === me) return;
    clearTimeout(partnerTypingTimer);
    if (frame.data.is_typing) partnerTypingTimer = setTimeout(() => update({ partnerTyping: false }), TYPING_SHOWN_MS);
    update({ partnerTyping: frame.data.is_typing });
  });
  client.on('presence', (frame) => {
    const presence = new Map<number, Presence>(state.presence);
    presence.set(frame.data.user_id, { online: frame.data.online, lastSeenAt: frame.data.last_seen_at });
    update({ presence });
  });
  client.on('error', (error) => console.warn('chat client', error.code, error.message));

  byTestId<HTMLFormElement>('start-conversation').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byTestId<HTMLInputElement>('partner-id-input');
    clearError('start-error');
    start(Number(input.value)).then(() => (input.value = ''), showError('start-error'));
  });
  byTestId<HTMLFormElement>('send-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byTestId<HTMLInputElement>('message-input');
    send(input.value);
    input.value = '';
  });
  byTestId('message-input').addEventListener('input', typed);
  byTestId('older-button').addEventListener('click', () => void loadOlderMessages().catch(showError('send-error')));
  byTestId('block-button').addEventListener('click', () => {
    clearError('send-error');
    toggleBlock().catch(showError('send-error'));
  });
  document.addEventListener('visibilitychange', () => {
    const conversationId = state.thread?.conversationId;
    if (document.visibilityState === 'visible' && conversationId && (state.conversations.get(conversationId)?.unread_count ?? 0) > 0) {
      markRead(conversationId);
    }
  });

  update({});
  client.connect();
}
