import { describe, expect, it } from 'vitest';
import { BackendTerminatedError, ConnectionError } from 'slonik';
import { DomainError } from '../commands/domain-error.js';
import { describeError, errorEnvelope, GatewayError } from './errors.js';

describe('describeError', () => {
  it('answers 503 unavailable with Retry-After, never 500, when Postgres cannot be reached or went away', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const startingUp = Object.assign(new Error('the database system is starting up'), { code: '57P03' });
    const unreachable = [
      new ConnectionError('could not connect', { cause: refused }),
      new Error('pool could not connect', { cause: refused }),
      startingUp,
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      new BackendTerminatedError(new Error('terminated')),
      new Error('Connection terminated unexpectedly'),
    ];
    for (const error of unreachable) {
      expect(describeError(error), error.message).toMatchObject({ status: 503, restCode: 'unavailable', wsCode: 'unavailable', retryAfterSeconds: 1, report: true });
    }
    // A statement Postgres refused is not an outage.
    expect(describeError(Object.assign(new Error('syntax error'), { code: '42601' }))).toMatchObject({ status: 500 });
  });

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
    expect(answer).toMatchObject({ status: 500, report: true, message: 'internal error' });
    expect(errorEnvelope(answer)).toEqual({ success: false, error: 'internal error', code: 'internal' });
  });
});
