import { randomBytes } from 'node:crypto';
import { allDeliverySubjects, allEventsSubject, allSignalSubjects, allUserSubjects, inboxPrefix } from '../src/shared/nats.js';

/**
 * Least privilege on NATS: one user per role, allowed to publish and subscribe only where its job needs.
 * The one table of it, rendered into nats-server's configuration by `npm start`, the tests, the load tool
 * and `deploy/nats-server.conf` (docker-compose). Anything not allowed here is refused by the server; a
 * client without a user cannot connect at all.
 */

/** The roles that connect to NATS; each is its own NATS user, named after the role. */
export const NATS_ROLES = ['relay', 'projector', 'fanout', 'gateway', 'notifier'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

export type NatsPermissions = { readonly publish: readonly string[]; readonly subscribe: readonly string[] };

/**
 * The names the subjects are built from, as the roles are configured (NATS_SUBJECT_PREFIX, NATS_STREAM,
 * PROJECTOR_DURABLE, FANOUT_DURABLE, NOTIFIER_DURABLE). A test run serves many test files, each with its own random prefix,
 * stream and durables, from one server: there each is `*` (any one token), and only the role's part of the
 * subject tree is checked.
 */
export type NatsScope = {
  readonly subjectPrefix: string;
  readonly stream: string;
  readonly projectorDurable: string;
  readonly fanoutDurable: string;
  readonly notifierDurable: string;
};

/** Every token a test file may choose. */
export const ANY_SCOPE: NatsScope = { subjectPrefix: '*', stream: '*', projectorDurable: '*', fanoutDurable: '*', notifierDurable: '*' };

const JS_API = '$JS.API';

/** A durable pull consumer's needs (durable-consumer.ts and nats.js `consume()`): no other consumer's. */
function durableConsumer(stream: string, durable: string): string[] {
  return [
    `${JS_API}.INFO`, // jetstreamManager() checks that JetStream is on
    `${JS_API}.STREAM.INFO.${stream}`, // waits for the relay to create the stream
    `${JS_API}.CONSUMER.INFO.${stream}.${durable}`,
    // Create and update (nats.js: CONSUMER.CREATE.<stream>.<name>[.<filter subject>]).
    `${JS_API}.CONSUMER.CREATE.${stream}.${durable}`,
    `${JS_API}.CONSUMER.CREATE.${stream}.${durable}.>`,
    `${JS_API}.CONSUMER.MSG.NEXT.${stream}.${durable}`, // pull requests
    `$JS.ACK.${stream}.${durable}.>`, // ack, nak, term
  ];
}

/** The table: what each role may publish and subscribe to. */
export function rolePermissions(role: NatsRole, scope: NatsScope): NatsPermissions {
  const { subjectPrefix: prefix, stream } = scope;
  // Replies (JetStream API answers, publish acks, pulled messages) come to the role's own inbox only.
  const ownInbox = `${inboxPrefix(role)}.>`;
  switch (role) {
    case 'relay':
      return {
        publish: [
          allEventsSubject(prefix),
          `${JS_API}.INFO`,
          `${JS_API}.STREAM.INFO.${stream}`,
          `${JS_API}.STREAM.CREATE.${stream}`,
          `${JS_API}.STREAM.UPDATE.${stream}`,
          `${JS_API}.STREAM.MSG.GET.${stream}`, // the last message, to recover a checkpoint; an erased event's copies
          `${JS_API}.STREAM.MSG.DELETE.${stream}`, // erasure: a deleted message's copy (stream-erasure.ts)
        ],
        subscribe: [ownInbox],
      };
    case 'projector':
      return { publish: durableConsumer(stream, scope.projectorDurable), subscribe: [ownInbox] };
    case 'fanout':
      return {
        publish: [
          ...durableConsumer(stream, scope.fanoutDurable),
          `${JS_API}.STREAM.MSG.GET.${stream}`, // the message at the ack floor (ack-floor.ts)
          allDeliverySubjects(prefix), // the only publisher of event frames
        ],
        subscribe: [ownInbox],
      };
    case 'notifier':
      // Reads events only: its notifications go to Redis, never to NATS.
      return { publish: durableConsumer(stream, scope.notifierDurable), subscribe: [ownInbox] };
    case 'gateway':
      // No JetStream, no events, and never a delivery subject: typing goes on signal subjects. It subscribes
      // to each user's two subjects at once (`<prefix>.to.<user>.*`), which only `<prefix>.to.*.*` covers.
      return { publish: [allSignalSubjects(prefix)], subscribe: [allUserSubjects(prefix)] };
    default: {
      const unknown: never = role;
      throw new Error(`no NATS permissions for role ${String(unknown)}`);
    }
  }
}

/** A password given as is (generated at start) or as the name of an environment variable of the server. */
export type NatsPassword = string | { readonly env: string };

export type NatsUser = {
  readonly user: string;
  readonly password: NatsPassword;
  readonly permissions: NatsPermissions;
};

/** One user per role, named after it. */
export function roleUsers(scope: NatsScope, passwords: Readonly<Record<NatsRole, NatsPassword>>): NatsUser[] {
  return NATS_ROLES.map((role) => ({ user: role, password: passwords[role], permissions: rolePermissions(role, scope) }));
}

/**
 * Everything allowed: for the tests and the load tool, which look at streams and consumers from outside
 * (never for `npm start` or docker-compose).
 */
export function operatorUser(password: NatsPassword): NatsUser {
  return { user: 'operator', password, permissions: { publish: ['>'], subscribe: ['>'] } };
}

/** A fresh random password for each role, for servers started with the roles (`npm start`, tests, load tool). */
export function generatePasswords(): Record<NatsRole, string> {
  const password = (): string => randomBytes(24).toString('base64url');
  return { relay: password(), projector: password(), fanout: password(), gateway: password(), notifier: password() };
}

/**
 * The users of a server started for one test or benchmark run, whose roles may pick any prefix, stream and
 * durables: every role, and the operator to look from outside.
 */
export function runUsers(): { users: NatsUser[]; passwords: Record<NatsRole, string>; operatorPassword: string } {
  const passwords = generatePasswords();
  const operatorPassword = generatePasswords().relay;
  return { users: [...roleUsers(ANY_SCOPE, passwords), operatorUser(operatorPassword)], passwords, operatorPassword };
}

/** The variables a role process connects with. */
export function roleCredentialsEnv(role: NatsRole, password: string): { NATS_USER: string; NATS_PASSWORD: string } {
  return { NATS_USER: role, NATS_PASSWORD: password };
}

/** The environment variable docker-compose passes to nats-server with a role's password. */
export function passwordVariable(role: NatsRole): string {
  return `NATS_${role.toUpperCase()}_PASSWORD`;
}

export function isNatsRole(name: string): name is NatsRole {
  return (NATS_ROLES as readonly string[]).includes(name);
}
