import { describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
import { z } from 'zod';
import { parseInput, parsePageQuery, userId } from './request-schemas.js';

describe('parsePageQuery', () => {
  it('defaults to 50 from offset 0, and takes limit 1..1000 with offset or before', () => {
    expect(parsePageQuery({})).toEqual({ limit: 50, offset: 0 });
    expect(parsePageQuery({ limit: '1', offset: '20' })).toEqual({ limit: 1, offset: 20 });
    expect(parsePageQuery({ limit: '1000', before: '01ARZ3NDEKTSV4RRFFQ69G5FAV' })).toEqual({ limit: 1000, before: '01ARZ3NDEKTSV4RRFFQ69G5FAV' });
  });

  it('refuses limits outside 1..1000, non-integers, negative offsets and offset with before', () => {
    for (const query of [{ limit: '0' }, { limit: '1001' }, { limit: '2.5' }, { limit: '' }, { offset: '-1' }, { limit: '1e3' }, { offset: '1', before: 'x' }]) {
      expect(() => parsePageQuery(query), JSON.stringify(query)).toThrow(GatewayError);
    }
  });
});

describe('parseInput', () => {
  const body = z.object({ user_id: userId });
  const messageOf = (input: unknown): string => {
    try {
      parseInput(body, input);
    } catch (error) {
      if (error instanceof GatewayError) return error.message;
    }
    throw new Error('parseInput accepted it');
  };

  it('says a missing field is required, and a mistyped one what was wrong with it', () => {
    expect(messageOf({})).toBe('user_id is required');
    expect(messageOf({ user_id: null })).toMatch(/^user_id: /);
    expect(messageOf({ user_id: '42' })).toBe('user_id: must be an integer user id');
    expect(messageOf({ user_id: 4.5 })).toMatch(/^user_id: /);
    expect(messageOf({ user_id: 4.5 })).not.toMatch(/required/);
  });
});
