import { describe, expect, it } from 'vitest';
import { ContractViolation } from '../support/contract/contract-documents.js';
import { checkResponse, type ObservedResponse } from '../support/contract/rest-contract.js';
import { checkUpgradeRefusal, socketContract } from '../support/contract/socket-contract.js';

/** The drift check bites: answers and frames that break the documents are refused, with the route or frame named. */

const headers = (extra: Record<string, string> = {}) => new Headers({ 'x-request-id': '01JCONTRACTTEST0000000000', ...extra });
const at = '2026-11-27T21:00:00.000Z';

const conversation = {
  id: '01JCONVERSATION00000000000',
  user1_id: 1,
  user2_id: 2,
  last_message_content: null,
  last_message_at: null,
  created_at: at,
  updated_at: at,
  blocked_by: null,
  unread_count: 0,
};

const message = {
  id: '01JMESSAGE0000000000000000',
  conv_id: conversation.id,
  sender_id: 1,
  msg: 'hello',
  time: at,
  read_at: null,
  client_msg_id: null,
  seq: 2,
  deleted_at: null,
};

const getConversation = (body: unknown, status = 200, extra?: Record<string, string>): ObservedResponse => ({
  method: 'GET',
  path: `/api/v1/chat/conversations/${conversation.id}?x=1`,
  status,
  headers: headers(extra),
  body,
});

const refused = (check: () => void): string => {
  try {
    check();
  } catch (error) {
    expect(error).toBeInstanceOf(ContractViolation);
    return (error as Error).message;
  }
  throw new Error('the check accepted it');
};

describe('checkResponse', () => {
  it('accepts documented answers', () => {
    checkResponse(getConversation({ success: true, data: conversation }));
    checkResponse(getConversation({ success: true, data: { ...conversation, blocked_by: 1, last_message_content: null, last_message_at: at } }));
    checkResponse(getConversation({ success: false, error: 'conversation not found', code: 'not_found' }, 404));
    checkResponse(getConversation({ success: false, error: 'behind', code: 'read_model_behind' }, 503, { 'retry-after': '1' }));
    checkResponse({ method: 'POST', path: '/api/v1/chat/messages', status: 201, headers: headers(), body: { success: true, data: message } });
    checkResponse({ method: 'GET', path: '/nope', status: 404, headers: headers(), body: { success: false, error: 'no route GET /nope', code: 'not_found' } });
  });

  it('refuses a missing field, a wrong type, an undocumented field, and a bad format', () => {
    const { unread_count: _, ...withoutUnread } = conversation;
    expect(refused(() => checkResponse(getConversation({ success: true, data: withoutUnread })))).toMatch(/GET \/api\/v1\/chat\/conversations\/\{id\} -> 200.*unread_count/);
    expect(refused(() => checkResponse(getConversation({ success: true, data: { ...conversation, user1_id: '1' } })))).toMatch(/user1_id must be integer/);
    expect(refused(() => checkResponse(getConversation({ success: true, data: { ...conversation, extra: 1 } })))).toMatch(/additional properties/);
    expect(refused(() => checkResponse(getConversation({ success: true, data: { ...conversation, created_at: 'yesterday' } })))).toMatch(/date-time/);
    const { deleted_at: __, ...withoutDeletedAt } = message;
    expect(refused(() => checkResponse({ method: 'POST', path: '/api/v1/chat/messages', status: 201, headers: headers(), body: { success: true, data: withoutDeletedAt } }))).toMatch(/deleted_at/);
  });

  it('refuses an undocumented status, an undocumented error code, a missing header and a non-JSON body', () => {
    expect(refused(() => checkResponse(getConversation({ success: true, data: conversation }, 201)))).toMatch(/status 201 is not documented/);
    expect(refused(() => checkResponse(getConversation({ success: false, error: 'x', code: 'teapot' }, 404)))).toMatch(/code must be equal to one of the allowed values/);
    expect(refused(() => checkResponse(getConversation({ success: false, error: 'x', code: 'read_model_behind' }, 503)))).toMatch(/Retry-After is missing/);
    expect(refused(() => checkResponse({ ...getConversation({ success: true, data: conversation }), headers: new Headers() }))).toMatch(/X-Request-Id is missing/);
    expect(refused(() => checkResponse(getConversation(undefined)))).toMatch(/had none/);
    expect(refused(() => checkResponse({ method: 'GET', path: '/nope', status: 200, headers: headers(), body: { ok: true } }))).toMatch(/GET \/nope \(not a documented route\) -> 200/);
    expect(refused(() => checkResponse({ method: 'PATCH', path: `/api/v1/chat/conversations/${conversation.id}`, status: 200, headers: headers(), body: {} }))).toMatch(/not a documented route/);
  });
});

describe('socketContract', () => {
  const newMessage = {
    type: 'new_message',
    conversation_id: conversation.id,
    seq: 2,
    cursor: 'abc',
    timestamp: at,
    data: { id: message.id, sender_id: 1, message: 'hello', timestamp: at, read_at: null, client_msg_id: null },
  };

  it('accepts documented frames and answers', () => {
    const socket = socketContract();
    socket.received({ type: 'connected', timestamp: at, data: { user_id: 1, status: 'connected' } });
    socket.received(newMessage);
    socket.sent({ type: 'send_message', request_id: 'r1', conversation_id: conversation.id, content: 'hello' });
    socket.received({ type: 'ack', request_id: 'r1', timestamp: at, data: message });
    socket.sent(JSON.stringify({ type: 'typing', request_id: 7, conversation_id: conversation.id, is_typing: 1 }));
    socket.received({ type: 'error', request_id: 7, timestamp: at, data: { code: 'invalid_frame', message: 'is_typing: must be true or false' } });
    socket.sent({ type: 'ping', request_id: 'p' });
    socket.received({ type: 'pong', request_id: 'p', timestamp: at });
    socket.closed(4401);
  });

  it('refuses an undocumented frame type, a frame missing a field, and a wrong field type', () => {
    expect(refused(() => socketContract().received({ type: 'message_edited', timestamp: at }))).toMatch(/server frame message_edited: no such frame/);
    const { cursor: _, ...withoutCursor } = newMessage;
    expect(refused(() => socketContract().received(withoutCursor))).toMatch(/server frame new_message.*cursor/);
    expect(refused(() => socketContract().received({ ...newMessage, seq: '2' }))).toMatch(/seq must be integer/);
    expect(refused(() => socketContract().received({ type: 'presence', timestamp: at, data: { user_id: 1, online: 'yes', last_seen_at: null } }))).toMatch(/online must be boolean/);
  });

  it('checks an answer against the replies of the frame it answers', () => {
    const socket = socketContract();
    socket.sent({ type: 'typing', request_id: 'r2', conversation_id: conversation.id, is_typing: true });
    expect(refused(() => socket.received({ type: 'ack', request_id: 'r2', timestamp: at, data: message }))).toMatch(/ack to client frame typing.*forwarded/);
  });

  it('refuses an ack of a frame the document does not allow, and a malformed-frame refusal of one it allows', () => {
    const accepted = socketContract();
    accepted.sent({ type: 'send_message', request_id: 'r3', conversation_id: conversation.id });
    expect(refused(() => accepted.received({ type: 'ack', request_id: 'r3', timestamp: at, data: message }))).toMatch(/accepted a frame docs\/asyncapi.yaml refuses/);

    const undocumented = socketContract();
    undocumented.sent({ type: 'edit_message', request_id: 'r4' });
    expect(refused(() => undocumented.received({ type: 'ack', request_id: 'r4', timestamp: at, data: {} }))).toMatch(/frame type docs\/asyncapi.yaml does not list/);

    const wronglyRefused = socketContract();
    wronglyRefused.sent({ type: 'read', request_id: 'r5', conversation_id: conversation.id });
    expect(refused(() => wronglyRefused.received({ type: 'error', request_id: 'r5', timestamp: at, data: { code: 'invalid_frame', message: 'x' } }))).toMatch(/refused as invalid_frame a frame docs\/asyncapi.yaml allows/);
  });

  it('refuses an undocumented close code and upgrade status', () => {
    expect(refused(() => socketContract().closed(4000))).toMatch(/close code 4000/);
    expect(refused(() => checkUpgradeRefusal(418))).toMatch(/HTTP 418/);
    checkUpgradeRefusal(401);
  });
});
