import { describe, expect, it } from 'vitest';
import { deliverySubject, parseUserSubject, signalSubject, userSubjects } from './nats.js';

describe("a user's subjects", () => {
  it('are covered by one subscription, which tells them apart by the last token', () => {
    expect(userSubjects('chat', 42)).toBe('chat.to.42.*');
    expect(parseUserSubject(deliverySubject('chat', 42))).toEqual({ userId: 42, kind: 'delivery' });
    expect(parseUserSubject(signalSubject('chat', 42))).toEqual({ userId: 42, kind: 'signal' });
  });

  it('are only those two: any other last token is refused', () => {
    expect(parseUserSubject('chat.to.42.other')).toBeNull();
    expect(parseUserSubject('chat.to.42.events.x')).toBeNull();
  });
});
