import { NATS_ROLES, passwordVariable, roleUsers, type NatsPassword, type NatsRole, type NatsUser } from './nats-permissions.js';

/**
 * nats-server's `authorization` block for these users. There is no `no_auth_user`: with users defined, a
 * client that does not log in as one of them is refused. Passwords given as `{ env }` are read by the server
 * from its environment (`$NAME`), so that a checked-in file holds no secret.
 */
export function renderAuthorization(users: readonly NatsUser[]): string {
  const list = (subjects: readonly string[]): string => `[${subjects.map((subject) => JSON.stringify(subject)).join(', ')}]`;
  const password = (value: NatsPassword): string => (typeof value === 'string' ? JSON.stringify(value) : `$${value.env}`);
  const entries = users.map((entry) =>
    [
      '    {',
      `      user: ${JSON.stringify(entry.user)}`,
      `      password: ${password(entry.password)}`,
      '      permissions: {',
      `        publish: { allow: ${list(entry.permissions.publish)} }`,
      `        subscribe: { allow: ${list(entry.permissions.subscribe)} }`,
      '      }',
      '    }',
    ].join('\n'),
  );
  return ['authorization {', '  users = [', entries.join('\n'), '  ]', '}', ''].join('\n');
}

/**
 * docker-compose's nats-server authorization (`deploy/nats/authorization.conf`, checked in): the production
 * names (the roles' defaults) and each role's password from the server's environment, `NATS_<ROLE>_PASSWORD`.
 * Regenerate with `npm run -s nats-config > deploy/nats/authorization.conf`; a test keeps the two equal.
 */
export function composeAuthorization(): string {
  const scope = { subjectPrefix: 'chat', stream: 'CHAT_EVENTS', projectorDurable: 'projector', fanoutDurable: 'fanout', notifierDurable: 'notifier' };
  const passwords = Object.fromEntries(NATS_ROLES.map((role) => [role, { env: passwordVariable(role) }])) as Record<NatsRole, NatsPassword>;
  return `# Generated from stack/nats-permissions.ts by \`npm run -s nats-config\`; do not edit by hand.\n${renderAuthorization(roleUsers(scope, passwords))}`;
}
