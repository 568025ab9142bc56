import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { traceFieldsOf, traceMetadata } from '../event-store/event-metadata.js';
import { frameTrace, parseRequestId, parseTraceparent, requestTrace } from './request-context.js';

const VALID_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const newId = () => '01JGENERATED0000000000000';

describe('parseRequestId', () => {
  it('keeps 1 to 128 characters of letters, digits and . _ : -', () => {
    for (const id of ['a', 'req-42', 'A.b_c:d-e', '0123456789', 'x'.repeat(128), '8f1c2c9e-4b1a-4c55-9d43-1a2b3c4d5e6f']) {
      expect(parseRequestId(id)).toBe(id);
    }
  });

  it('refuses anything else: empty, too long, spaces, newlines, quotes, non-ASCII, non-strings', () => {
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a\nb', 'id\r\nX-Admin: 1', '"quoted"', '{"json":1}', 'ünïcode', 'a/b', 'a\u0000', null, undefined, {}, [], true]) {
      expect(parseRequestId(bad)).toBeNull();
    }
  });

  it('takes a WS frame\'s numeric request_id as its decimal text', () => {
    expect(parseRequestId(7)).toBe('7');
    expect(parseRequestId(-1.5)).toBe('-1.5');
    expect(parseRequestId(Number.NaN)).toBeNull();
  });

  it('only ever returns the safe alphabet, whatever it is given', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        const parsed = parseRequestId(text);
        expect(parsed === null || (parsed === text && /^[A-Za-z0-9._:-]{1,128}$/.test(parsed))).toBe(true);
      }),
    );
  });
});

describe('parseTraceparent', () => {
  it('keeps a valid version-00 traceparent', () => {
    expect(parseTraceparent(VALID_TRACEPARENT)).toBe(VALID_TRACEPARENT);
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')).not.toBeNull();
  });

  it('ignores other versions, all-zero ids, wrong lengths, uppercase hex and garbage', () => {
    for (const bad of [
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      `${VALID_TRACEPARENT}-extra`,
      ` ${VALID_TRACEPARENT}`,
      `${VALID_TRACEPARENT}\n`,
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g',
      '',
      undefined,
      42,
    ]) {
      expect(parseTraceparent(bad)).toBeNull();
    }
  });
});

describe('requestTrace', () => {
  it('keeps a sane client id and a valid traceparent', () => {
    expect(requestTrace({ requestId: 'client-1', traceparent: VALID_TRACEPARENT }, newId)).toEqual({
      requestId: 'client-1',
      traceparent: VALID_TRACEPARENT,
    });
  });

  it('replaces a missing or hostile id with a new one and leaves an invalid traceparent out', () => {
    expect(requestTrace({ requestId: undefined, traceparent: undefined }, newId)).toEqual({ requestId: newId() });
    expect(requestTrace({ requestId: 'x\n{"level":60}', traceparent: '00-zz' }, newId)).toEqual({ requestId: newId() });
  });
});

describe('frameTrace', () => {
  it('takes the frame\'s request_id, else a new one, and the socket\'s traceparent', () => {
    const socket = { requestId: 'upgrade-1', traceparent: VALID_TRACEPARENT };
    expect(frameTrace('send-1', socket, newId)).toEqual({ requestId: 'send-1', traceparent: VALID_TRACEPARENT });
    expect(frameTrace(3, socket, newId)).toEqual({ requestId: '3', traceparent: VALID_TRACEPARENT });
    expect(frameTrace('bad id', { requestId: 'upgrade-2' }, newId)).toEqual({ requestId: newId() });
    expect(frameTrace(undefined, { requestId: 'upgrade-2' }, newId)).toEqual({ requestId: newId() });
  });
});

describe('event metadata of a trace', () => {
  it('records request_id and, when given, traceparent; and reads back only those, only as strings', () => {
    expect(traceMetadata({ requestId: 'r1', traceparent: VALID_TRACEPARENT })).toEqual({ request_id: 'r1', traceparent: VALID_TRACEPARENT });
    expect(traceMetadata({ requestId: 'r1' })).toEqual({ request_id: 'r1' });
    expect(traceMetadata(undefined)).toEqual({});
    expect(traceFieldsOf({ request_id: 'r1', traceparent: VALID_TRACEPARENT, other: 'x' })).toEqual({ request_id: 'r1', traceparent: VALID_TRACEPARENT });
    expect(traceFieldsOf({ request_id: 5, traceparent: null })).toEqual({});
    expect(traceFieldsOf({})).toEqual({});
  });
});
