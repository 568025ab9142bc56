import { describe, expect, it } from 'vitest';
import { describeError } from '../errors.js';
import { parseClientFrame, requestIdOf } from './client-frames.js';

const codeOf = (text: string) => {
  const parsed = parseClientFrame(text);
  return parsed.ok ? 'ok' : describeError(parsed.error).wsCode;
};

describe('parseClientFrame', () => {
  it('accepts every client frame type of the contract', () => {
    for (const frame of [
      { type: 'auth', token: 'x.y.z' },
      { type: 'send_message', conversation_id: 'c', content: 'hi' },
      { type: 'send_message', conversation_id: 'c', content: 'hi', client_msg_id: 'k', request_id: 7 },
      { type: 'send_message', conversation_id: 'c', content: 'hi', client_msg_id: null },
      { type: 'join_conversation', conversation_id: 'c' },
      { type: 'typing', conversation_id: 'c', is_typing: false },
      { type: 'read', conversation_id: 'c' },
      { type: 'resume', since: 'MTox' },
      { type: 'ping', request_id: 'r' },
    ]) {
      expect(parseClientFrame(JSON.stringify(frame))).toEqual({ ok: true, frame });
    }
  });

  it('tells bad JSON, a non-object, a missing or unknown type and wrong fields apart', () => {
    expect(codeOf('{')).toBe('invalid_json');
    expect(codeOf('"text"')).toBe('invalid_frame');
    expect(codeOf('null')).toBe('invalid_frame');
    expect(codeOf('{"content":"x"}')).toBe('invalid_frame');
    expect(codeOf('{"type":"subscribe"}')).toBe('unknown_type');
    expect(codeOf('{"type":"toString"}')).toBe('unknown_type');
    expect(codeOf('{"type":"typing","conversation_id":"c","is_typing":1}')).toBe('invalid_frame');
    expect(codeOf('{"type":"send_message","conversation_id":"c"}')).toBe('invalid_frame');
    expect(codeOf('{"type":"send_message","conversation_id":"c","content":"x","client_msg_id":5}')).toBe('invalid_frame');
    // An empty key is a well-formed frame: the send command refuses it as invalid_client_msg_id (API.md).
    expect(codeOf('{"type":"send_message","conversation_id":"c","content":"x","client_msg_id":""}')).toBe('ok');
  });

  it('keeps the request_id of a frame it refuses, when it has a usable one', () => {
    expect(parseClientFrame('{"type":"nope","request_id":"r1"}')).toMatchObject({ ok: false, requestId: 'r1' });
    expect(parseClientFrame('{"type":"typing","request_id":5}')).toMatchObject({ ok: false, requestId: 5 });
    expect(parseClientFrame('{"type":"nope","request_id":{"a":1}}')).toMatchObject({ ok: false, requestId: undefined });
  });
});

describe('parseClientFrame on JSON that is not an object', () => {
  it('refuses null, arrays and scalars as invalid_frame, saying a frame must be an object', () => {
    for (const text of ['null', '[]', '[{"type":"ping"}]', '7', '"ping"', 'true']) {
      const parsed = parseClientFrame(text);
      expect(parsed.ok, text).toBe(false);
      if (!parsed.ok) expect([describeError(parsed.error).wsCode, parsed.error.message], text).toEqual(['invalid_frame', 'frame must be a JSON object']);
    }
  });
});

describe('requestIdOf', () => {
  it('reads the request_id of any JSON object, whatever else it holds', () => {
    expect(requestIdOf('{"request_id":"r1"}')).toBe('r1');
    expect(requestIdOf('{"type":"nope","request_id":7,"x":[1]}')).toBe(7);
  });

  it('gives nothing for text that is not a JSON object or carries no valid request_id', () => {
    for (const text of ['not json', '', 'null', '"r1"', '7', '["r1"]', '[{"request_id":"r1"}]', '{"request_id":{"a":1}}', '{}']) {
      expect(requestIdOf(text), text).toBeUndefined();
    }
  });
});
