import { orderedConversations, partnerOf, type Conversation, type ConversationList } from './conversation-list.js';
import { shownMessages, type Thread } from './thread.js';

/** Renders the page's state into the static skeleton of index.html; the forms and inputs are never rebuilt. */

export type Presence = { readonly online: boolean; readonly lastSeenAt: string | null };

export type PageState = {
  readonly me: number;
  readonly connection: string;
  readonly conversations: ConversationList;
  readonly presence: ReadonlyMap<number, Presence>;
  readonly thread: Thread | null;
  /** The open conversation's partner is typing. */
  readonly partnerTyping: boolean;
};

export type ViewActions = {
  open(conversationId: string): void;
  deleteMessage(messageId: string): void;
};

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string>,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export function byTestId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!node) throw new Error(`the page has no [data-testid="${id}"]`);
  return node;
}

const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function presenceDot(presence: Presence | undefined): HTMLSpanElement {
  return element('span', { class: presence?.online ? 'dot online' : 'dot' });
}

function describePresence(presence: Presence | undefined): string {
  if (!presence) return 'presence unknown';
  if (presence.online) return 'online';
  return presence.lastSeenAt === null ? 'offline' : `offline, last seen ${time(presence.lastSeenAt)}`;
}

function conversationItem(conversation: Conversation, state: PageState, actions: ViewActions): HTMLLIElement {
  const partner = partnerOf(conversation, state.me);
  const item = element(
    'li',
    {
      'data-testid': 'conversation-item',
      'data-conversation-id': conversation.id,
      'data-partner-id': String(partner),
      'aria-current': String(state.thread?.conversationId === conversation.id),
    },
    element('span', {}, presenceDot(state.presence.get(partner)), `user ${partner}`, conversation.blocked_by === null ? '' : ' (blocked)'),
    conversation.unread_count > 0 ? element('span', { 'data-testid': 'unread-badge' }, String(conversation.unread_count)) : '',
    element('span', { 'data-testid': 'last-message' }, conversation.last_message_content ?? (conversation.last_message_at ? 'message deleted' : 'no messages yet')),
  );
  item.addEventListener('click', () => actions.open(conversation.id));
  return item;
}

function messageItems(thread: Thread, me: number, actions: ViewActions): HTMLLIElement[] {
  const sent = shownMessages(thread).map((message) => {
    const mine = message.senderId === me;
    const state = message.deletedAt !== null ? 'deleted' : message.readAt !== null ? 'read' : 'sent';
    const meta = element('span', { class: 'meta' }, time(message.sentAt));
    if (mine && message.deletedAt === null) {
      meta.append(element('span', { 'data-testid': 'read-receipt' }, message.readAt === null ? '✓ sent' : '✓✓ read'));
      const remove = element('button', { 'data-testid': 'delete-button', title: 'delete for everyone' }, 'delete');
      remove.addEventListener('click', () => actions.deleteMessage(message.id));
      meta.append(remove);
    }
    return element(
      'li',
      {
        'data-testid': 'message',
        class: mine ? 'mine' : '',
        'data-message-id': message.id,
        'data-seq': String(message.seq),
        'data-sender-id': String(message.senderId),
        'data-state': state,
      },
      element('div', { 'data-testid': 'message-text' }, message.text ?? 'message deleted'),
      meta,
    );
  });
  const pending = thread.pending.map((message) =>
    element(
      'li',
      { 'data-testid': 'message', class: 'mine', 'data-client-msg-id': message.clientMsgId, 'data-state': message.failure === null ? 'pending' : 'failed' },
      element('div', { 'data-testid': 'message-text' }, message.text),
      element('span', { class: 'meta' }, message.failure === null ? 'pending…' : `not sent: ${message.failure}`),
    ),
  );
  return [...sent, ...pending];
}

export function render(state: PageState, actions: ViewActions): void {
  const connection = byTestId('connection-state');
  connection.textContent = state.connection;
  connection.dataset['state'] = state.connection;

  byTestId('conversation-list').replaceChildren(...orderedConversations(state.conversations).map((c) => conversationItem(c, state, actions)));

  const thread = state.thread;
  const conversation = thread ? state.conversations.get(thread.conversationId) : undefined;
  const section = byTestId('thread');
  section.hidden = !thread || !conversation;
  if (!thread || !conversation) return;
  const partner = partnerOf(conversation, state.me);
  byTestId('thread-partner').textContent = `user ${partner}`;
  const presence = byTestId('presence');
  presence.replaceChildren(presenceDot(state.presence.get(partner)), describePresence(state.presence.get(partner)));
  const blockedByMe = conversation.blocked_by === state.me;
  byTestId('block-button').textContent = blockedByMe ? 'Unblock' : 'Block';
  const notice = byTestId('blocked-notice');
  notice.hidden = conversation.blocked_by === null;
  notice.textContent = blockedByMe ? `You blocked user ${partner}: no messages either way until you unblock.` : '';
  byTestId<HTMLButtonElement>('older-button').hidden = thread.complete;
  const typing = byTestId('typing-indicator');
  typing.hidden = !state.partnerTyping;
  typing.textContent = `user ${partner} is typing…`;

  const list = byTestId('message-list');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...messageItems(thread, state.me, actions));
  if (atBottom) list.scrollTop = list.scrollHeight;
}
