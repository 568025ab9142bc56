import { describe, expect, it } from 'vitest';
import { DomainError } from '../commands/domain-error.js';
import { describeError, errorEnvelope, GatewayError } from './errors.js';

describe('describeError', () => {
  it('maps domain errors to statuses and the same code on both transports', () => {
    expect(describeError(new DomainError('not_found', 'conversation not found'))).toMatchObject({ status: 404, restCode: 'not_found', wsCode: 'not_found' });
    expect(describeError(new DomainError('too_long', 'x'))).toMatchObject({ status: 400, restCode: 'too_long', wsCode: 'too_long' });
    expect(describeError(new DomainError('blank_message', 'x'))).toMatchObject({ status: 400, wsCode: 'blank_message' });
    expect(describeError(new DomainError('self_conversation', 'x'))).toMatchObject({ status: 400 });
    expect(describeError(new DomainError('client_msg_id_conflict', 'x'))).toMatchObject({ status: 409 });
  });

  it('maps gateway errors, with invalid input as invalid_request over REST and invalid_frame over WS', () => {
    expect(describeError(new GatewayError('invalid_input', 'limit: too big'))).toMatchObject({
      status: 400,
      restCode: 'invalid_request',
      wsCode: 'invalid_frame',
      message: 'limit: too big',
    });
    expect(describeError(new GatewayError('unauthorized', 'x'))).toMatchObject({ status: 401, wsCode: 'unauthorized' });
    expect(describeError(new GatewayError('rate_limited', 'x', 12))).toMatchObject({ status: 429, retryAfterSeconds: 12 });
  });

  it('hides the details of anything else behind a 500', () => {
    const answer = describeError(new Error('connection to 10.0.0.3 refused, password=hunter2'));
    expect(answer).toMatchObject({ status: 500, internal: true, message: 'internal error' });
    expect(errorEnvelope(answer)).toEqual({ success: false, error: 'internal error', code: 'internal' });
  });
});
