import { describe, expect, it } from 'vitest';
import { DomainError } from '../domain-error.js';
import { assertValidClientMsgId, MAX_CLIENT_MSG_ID_LENGTH } from './message-content.js';

const codeOf = (clientMsgId: string): string => {
  try {
    assertValidClientMsgId(clientMsgId);
    return 'ok';
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
};

describe('assertValidClientMsgId', () => {
  it('accepts 1 to 128 code points, an emoji counting as one', () => {
    expect(MAX_CLIENT_MSG_ID_LENGTH).toBe(128);
    expect(codeOf('a')).toBe('ok');
    expect(codeOf('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe('ok');
    expect(codeOf('x'.repeat(128))).toBe('ok');
    expect(codeOf('😀'.repeat(128))).toBe('ok');
  });

  it('refuses an empty one and one over 128 code points with invalid_client_msg_id', () => {
    expect(codeOf('')).toBe('invalid_client_msg_id');
    expect(codeOf('x'.repeat(129))).toBe('invalid_client_msg_id');
    expect(codeOf('😀'.repeat(129))).toBe('invalid_client_msg_id');
  });

  it('refuses a lone surrogate and control characters anywhere', () => {
    for (const clientMsgId of ['\ud800', 'a\udc00b', 'a\u0000', '\tabc', 'ab\ncd', 'x\u007f', 'x\u009f']) {
      expect(codeOf(clientMsgId), JSON.stringify(clientMsgId)).toBe('invalid_client_msg_id');
    }
    expect(codeOf('a b')).toBe('ok');
  });

  it('says what is allowed', () => {
    expect(() => assertValidClientMsgId('')).toThrow('client_msg_id must be 1 to 128 characters without control characters');
  });
});
