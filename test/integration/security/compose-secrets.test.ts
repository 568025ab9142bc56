import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../../stack/free-port.js';
import { composeAuthorization } from '../../../stack/nats-auth-config.js';
import { NATS_ROLES, passwordVariable } from '../../../stack/nats-permissions.js';
import { gatewayRedisAcl, notifierRedisAcl } from '../../../stack/redis-acl.js';
import { startServerProcess, type ServerProcess } from '../../../stack/server-process.js';

/** docker-compose.yml and the NATS authorization file it mounts: no secret written, the one permission table. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const compose = await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8');
const authorizationFile = path.join(ROOT, 'deploy/nats/authorization.conf');
let root: string | undefined;
let server: ServerProcess | undefined;

afterAll(async () => {
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('docker-compose', () => {
  it('writes no secret: every password and secret comes from a required variable', () => {
    const secrets = compose.split('\n').filter((line) => /^\s*[A-Z_]*(PASSWORD|SECRET)[A-Z_]*:/.test(line));
    expect(secrets.length).toBeGreaterThanOrEqual(8);
    for (const line of secrets) expect(line).toMatch(/:\s*\$\{[A-Z_]+:\?[^}]+\}\s*$/);
    expect(compose).toMatch(/REDIS_URL: redis:\/\/gateway:\$\{REDIS_GATEWAY_PASSWORD:\?[^}]+\}@redis:6379/);
    expect(compose).toMatch(/REDIS_URL: redis:\/\/notifier:\$\{REDIS_NOTIFIER_PASSWORD:\?[^}]+\}@redis:6379/);
  });

  it('mounts the NATS authorization generated from the permission table', async () => {
    expect(await readFile(authorizationFile, 'utf8')).toBe(composeAuthorization());
    expect(compose).toContain('./deploy/nats/authorization.conf:/etc/nats/authorization.conf:ro');
    for (const role of NATS_ROLES) expect(compose).toContain(`${passwordVariable(role)}: \${${passwordVariable(role)}:?`);
  });

  it('gives Redis the gateway and notifier ACLs of stack/redis-acl.ts, the default user off', () => {
    const ruleOf = (user: string): string[] | undefined =>
      compose
        .split('\n')
        .find((text) => text.trim().startsWith(`--user ${user} `))
        ?.trim()
        .replaceAll("'", '')
        .split(/\s+/)
        .slice(2);
    expect(ruleOf('gateway')).toEqual(gatewayRedisAcl('chat:'));
    expect(ruleOf('notifier')).toEqual(notifierRedisAcl('chat:', 'notifications'));
    expect(compose).toContain('NOTIFICATIONS_CHANNEL: notifications');
    expect(compose).toContain('--user default off resetpass -@all');
    expect(compose).toContain('REDIS_KEY_PREFIX: "chat:"');
  });

  it('runs nats-server with that file: passwords from its environment, nobody anonymous', async () => {
    root = await mkdtemp(path.join(tmpdir(), 'matcha-compose-nats-'));
    const port = await getFreePort();
    const passwords = Object.fromEntries(NATS_ROLES.map((role) => [passwordVariable(role), `pw-${role}-${port}`]));
    // The server reads the passwords from its environment, as in the compose service.
    Object.assign(process.env, passwords);
    server = await startServerProcess({
      name: 'nats-server',
      command: 'nats-server',
      args: ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', root, '-c', authorizationFile],
      port,
    });
    const url = `nats://127.0.0.1:${port}`;
    const gateway = await connect({ servers: url, user: 'gateway', pass: `pw-gateway-${port}` });
    await gateway.close();
    await expect(connect({ servers: url, reconnect: false })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
    await expect(connect({ servers: url, reconnect: false, user: 'gateway', pass: '' })).rejects.toMatchObject({
      code: 'AUTHORIZATION_VIOLATION',
    });
  });
});
