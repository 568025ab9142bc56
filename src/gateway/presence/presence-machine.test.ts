import { describe, expect, it } from 'vitest';
import { decidePresence, isOnline, NEVER_SEEN, type Observation, type PresenceState } from './presence-machine.js';

const timings = { graceMs: 10_000, leaseTtlMs: 45_000 };
const T = 1_800_000_000_000;

const opened = (liveSockets = 1, now = T): Observation => ({ cause: 'socket_opened', now, liveSockets, leasesExpireAt: liveSockets > 0 ? now + 45_000 : null });
const closed = (liveSockets = 0, now = T): Observation => ({ cause: 'socket_closed', now, liveSockets, leasesExpireAt: liveSockets > 0 ? now + 30_000 : null });
const due = (now: number, liveSockets = 0, dueAt = now): Observation => ({ cause: 'due', now, dueAt, liveSockets, leasesExpireAt: liveSockets > 0 ? now + 20_000 : null });

const online: PresenceState = { name: 'online' };
const leaving = (since: number): PresenceState => ({ name: 'leaving', since });

describe('the presence machine', () => {
  describe('coming online', () => {
    it('announces a first socket of a user never seen, and looks again when its lease would lapse', () => {
      expect(decidePresence(NEVER_SEEN, opened(), timings)).toEqual({ next: online, checkAt: T + 45_000, announce: { online: true, lastSeenAt: T } });
    });
    it('looks again a lease lifetime later when the leases read gave no expiry', () => {
      expect(decidePresence(NEVER_SEEN, { ...opened(), leasesExpireAt: null }, timings)?.checkAt).toBe(T + 45_000);
      expect(decidePresence(online, { ...due(T), liveSockets: 1, leasesExpireAt: null }, { ...timings, leaseTtlMs: 7_000 })?.checkAt).toBe(T + 7_000);
    });
    it('announces a user seen before', () => {
      expect(decidePresence({ name: 'offline', lastSeenAt: T - 60_000 }, opened(), timings)?.announce).toEqual({ online: true, lastSeenAt: T });
    });
    it('changes nothing for another socket of an online user', () => {
      expect(decidePresence(online, opened(2), timings)).toBeNull();
    });
    it('takes a reconnect inside the grace back online without a word', () => {
      expect(decidePresence(leaving(T - 3_000), opened(), timings)).toEqual({ next: online, checkAt: T + 45_000, announce: null });
    });
    it('changes nothing for a socket that closed again before its opening was looked at', () => {
      expect(decidePresence(NEVER_SEEN, opened(0), timings)).toBeNull();
      expect(decidePresence(online, opened(0), timings)).toBeNull();
    });
  });

  describe('going offline', () => {
    it('starts the grace when the last socket closes, and says nothing yet', () => {
      expect(decidePresence(online, closed(), timings)).toEqual({ next: leaving(T), checkAt: T + 10_000, announce: null });
    });
    it('changes nothing while another socket is open', () => {
      expect(decidePresence(online, closed(1), timings)).toBeNull();
    });
    it('waits out the grace', () => {
      expect(decidePresence(leaving(T), due(T + 9_999), timings)).toEqual({ next: leaving(T), checkAt: T + 10_000, announce: null });
    });
    it('announces offline once the grace is over, last seen when the last socket closed', () => {
      expect(decidePresence(leaving(T), due(T + 10_000), timings)).toEqual({
        next: { name: 'offline', lastSeenAt: T },
        checkAt: null,
        announce: { online: false, lastSeenAt: T },
      });
    });
    it('comes back online without a word when a lease is live at the end of the grace', () => {
      expect(decidePresence(leaving(T), due(T + 10_000, 1), timings)).toEqual({ next: online, checkAt: T + 30_000, announce: null });
    });
    it('changes nothing for another close, or an opening already closed again, during the grace', () => {
      expect(decidePresence(leaving(T - 3_000), closed(), timings)).toBeNull();
      expect(decidePresence(leaving(T - 3_000), opened(0), timings)).toBeNull();
    });
    it('with no grace, goes offline at the first look after the close', () => {
      const none = { ...timings, graceMs: 0 };
      const started = decidePresence(online, closed(), none);
      expect(started?.checkAt).toBe(T);
      expect(decidePresence(started!.next, due(T), none)?.announce).toEqual({ online: false, lastSeenAt: T });
    });
  });

  describe('a gateway that died', () => {
    it('keeps an online user whose leases are renewed, looking again at their new expiry', () => {
      expect(decidePresence(online, due(T, 1), timings)).toEqual({ next: online, checkAt: T + 20_000, announce: null });
    });
    it('takes an online user whose leases lapsed offline at once, last seen at the lease\'s last renewal', () => {
      expect(decidePresence(online, due(T + 300, 0, T), timings)).toEqual({
        next: { name: 'offline', lastSeenAt: T - 45_000 },
        checkAt: null,
        announce: { online: false, lastSeenAt: T - 45_000 },
      });
    });
  });

  it('drops an offline user from the schedule without a word', () => {
    expect(decidePresence(NEVER_SEEN, due(T), timings)).toEqual({ next: NEVER_SEEN, checkAt: null, announce: null });
    expect(decidePresence(NEVER_SEEN, closed(), timings)).toBeNull();
  });

  it('shows leaving users as online', () => {
    expect([NEVER_SEEN, online, leaving(T)].map(isOnline)).toEqual([false, true, true]);
  });
});
