import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createSocketDeadlines, type Deadline, type SocketDeadlines } from './socket-deadlines.js';

const schedules: SocketDeadlines[] = [];
afterEach(() => {
  for (const schedule of schedules.splice(0)) schedule.close();
});

function schedule(): SocketDeadlines {
  const deadlines = createSocketDeadlines();
  schedules.push(deadlines);
  return deadlines;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Owners that record that, and when, they passed, by name. */
function owners(deadlines: SocketDeadlines, names: readonly string[]) {
  const passed: string[] = [];
  const passedAt = new Map<string, number>();
  const byName = new Map<string, Deadline>();
  for (const name of names) {
    byName.set(name, deadlines.create({ deadlinePassed: () => void (passed.push(name), passedAt.set(name, performance.now())) }));
  }
  return { passed, passedAt, deadline: (name: string) => byName.get(name)! };
}

describe('the socket deadlines', () => {
  it('pass in time order, each once, not before its delay', async () => {
    const deadlines = schedule();
    const { passed, passedAt, deadline } = owners(deadlines, ['a', 'b', 'c']);
    const startedAt = performance.now();
    deadlines.set(deadline('a'), 60);
    deadlines.set(deadline('b'), 20);
    deadlines.set(deadline('c'), 40);
    await sleep(10);
    expect(passed).toEqual([]);
    await sleep(100);
    expect(passed).toEqual(['b', 'c', 'a']);
    expect(passedAt.get('b')! - startedAt).toBeGreaterThanOrEqual(20);
    expect(passedAt.get('c')! - startedAt).toBeGreaterThanOrEqual(40);
    expect(passedAt.get('a')! - startedAt).toBeGreaterThanOrEqual(60);
    expect(deadlines.size).toBe(0);
  });

  it('replaces a deadline when one is set again, and forgets a cleared one', async () => {
    const deadlines = schedule();
    const { passed, deadline } = owners(deadlines, ['later', 'earlier', 'cleared']);
    deadlines.set(deadline('later'), 10);
    deadlines.set(deadline('later'), 80);
    deadlines.set(deadline('earlier'), 200);
    deadlines.set(deadline('earlier'), 30);
    deadlines.set(deadline('cleared'), 20);
    deadlines.clear(deadline('cleared'));
    deadlines.clear(deadline('cleared'));
    await sleep(50);
    expect(passed).toEqual(['earlier']);
    await sleep(60);
    expect(passed).toEqual(['earlier', 'later']);
  });

  it('lets an owner set its next deadline when one passed', async () => {
    const deadlines = schedule();
    let times = 0;
    const deadline: Deadline = deadlines.create({
      deadlinePassed: () => {
        if (++times < 3) deadlines.set(deadline, 5);
      },
    });
    deadlines.set(deadline, 5);
    await sleep(80);
    expect(times).toBe(3);
  });

  it('passes nothing once closed', async () => {
    const deadlines = schedule();
    const { passed, deadline } = owners(deadlines, ['a']);
    deadlines.set(deadline('a'), 10);
    deadlines.close();
    deadlines.set(deadline('a'), 10);
    // A socket that closes after the schedule did lets go of its deadline as usual.
    deadlines.clear(deadline('a'));
    await sleep(40);
    expect(passed).toEqual([]);
  });

  it('keeps the heap in order under any sets and clears', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ owner: fc.nat(20), delay: fc.option(fc.integer({ min: 1, max: 1_000_000 }), { nil: null }) }), { maxLength: 200 }),
        (steps) => {
          const deadlines = createSocketDeadlines();
          const all = Array.from({ length: 21 }, () => deadlines.create({ deadlinePassed: () => undefined }));
          const expected = new Map<Deadline, number>();
          for (const { owner, delay } of steps) {
            const deadline = all[owner]!;
            if (delay === null) {
              deadlines.clear(deadline);
              expected.delete(deadline);
            } else {
              deadlines.set(deadline, delay);
              expected.set(deadline, deadline.at);
            }
          }
          expect(deadlines.size).toBe(expected.size);
          for (const deadline of all) expect(deadline.slot === -1).toBe(!expected.has(deadline));
          for (const [deadline, at] of expected) expect(deadline.at).toBe(at);
          // The heap's order: every deadline is due no earlier than its parent's.
          const bySlot = new Map([...expected.keys()].map((deadline) => [deadline.slot, deadline]));
          expect([...bySlot.keys()].sort((a, b) => a - b)).toEqual([...Array(expected.size).keys()]);
          for (const [slot, deadline] of bySlot) if (slot > 0) expect(bySlot.get((slot - 1) >> 1)!.at).toBeLessThanOrEqual(deadline.at);
          deadlines.close();
        },
      ),
    );
  });
});
