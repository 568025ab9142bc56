import { expect } from 'vitest';
import type { Decider } from '../../src/commands/decider.js';
import { DomainError, type DomainErrorCode } from '../../src/commands/domain-error.js';

/** given(events).when(command).then(events) / .thenThrows(code), for pure deciders. */
export function deciderSpec<C, E extends { type: string; data: object }, S>(decider: Decider<C, E, S>) {
  return {
    given(events: readonly E[]) {
      const state = events.reduce(decider.evolve, decider.initialState());
      return {
        when(command: C) {
          const run = () => decider.decide(command, state);
          return {
            then(expected: readonly E[]) {
              expect(run()).toEqual(expected);
            },
            thenThrows(code: DomainErrorCode) {
              let thrown: unknown;
              try {
                run();
              } catch (error) {
                thrown = error;
              }
              expect(thrown).toBeInstanceOf(DomainError);
              expect((thrown as DomainError).code).toBe(code);
            },
          };
        },
      };
    },
  };
}
