import type { RecordedEvent } from '../event-store/recorded-event.js';

/**
 * A stream's business rules as three pure functions (the Decider pattern): `decide` turns a command and the
 * current state into new events or throws a DomainError; `evolve` folds one event into the state.
 */
export type Decider<Command, Event extends { type: string; data: object }, State> = {
  readonly streamType: string;
  readonly initialState: () => State;
  readonly decide: (command: Command, state: State) => Event[];
  readonly evolve: (state: State, event: Event) => State;
  /** Validates a stored event into the decider's event type (the log is a boundary too). */
  readonly parseEvent: (recorded: RecordedEvent) => Event;
  /** Bump when the state shape changes: older snapshots are then ignored and the stream is folded again. */
  readonly snapshotSchema: number;
  /** @returns null when the JSON is not a state of the current snapshot schema. */
  readonly parseSnapshot: (json: unknown) => State | null;
};
