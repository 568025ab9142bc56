import { readFileSync } from 'node:fs';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { declaredMetrics, isExposed, metricNamesIn } from '../../support/promql-names.js';
import { waitUntil } from '../../support/wait-until.js';

const ROOT = new URL('../../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, ROOT), 'utf8');

const alertRules = z.object({
  groups: z.array(
    z.object({
      name: z.string(),
      rules: z.array(
        z.object({
          alert: z.string().regex(/^Chat[A-Za-z0-9]+$/),
          expr: z.string().min(1),
          for: z.string().regex(/^\d+[smh]$/).optional(),
          labels: z.object({ severity: z.enum(['page', 'ticket']) }),
          annotations: z.object({ summary: z.string().min(1) }),
        }).strict(),
      ),
    }),
  ),
});

const dashboard = z.object({
  title: z.string(),
  uid: z.string(),
  panels: z.array(z.object({ title: z.string(), targets: z.array(z.object({ refId: z.string(), expr: z.string().min(1) })).min(1) })),
});

/** Made by Prometheus itself for every scrape target, not by a role. */
const SCRAPE_SERIES = new Set(['up']);

const ROLES = [
  ['relay', 'src/relay/main.ts'],
  ['projector', 'src/projections/main.ts'],
  ['fanout', 'src/fanout/main.ts'],
  ['gateway', 'src/gateway/main.ts'],
  ['notifier', 'src/notifier/main.ts'],
] as const;

let pool: DatabasePool;
const opsPorts = new Map<string, number>();
const processes: RoleProcess[] = [];

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const gatewayPort = (await getFreePorts(1))[0]!;
  const env = { ...gatewayEnv({ databaseUrl, prefix: testPrefix() }), LOG_LEVEL: 'info', PORT: String(gatewayPort) };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  for (const [name, entry] of ROLES) {
    const role = await spawnRole({ name, entry, env });
    processes.push(role);
    const line = await role.waitForOutput(/ops server on port (\d+)/, 120_000);
    opsPorts.set(name, Number(/(\d+)/.exec(line)?.[1]));
  }
  await processes[2]!.waitForOutput(/fanning out/, 120_000);
  await processes[3]!.waitForOutput(/gateway listening/, 120_000);
  // The notifier's durable starts at the stream's end: the traffic below comes after it exists.
  await processes[4]!.waitForOutput(/"msg":"notifying"/, 120_000);
  // Some traffic, so that every role has handled an event.
  const url = `http://127.0.0.1:${gatewayPort}`;
  const token = await mintToken(31);
  const started = await api(url, 'POST', '/api/v1/chat/conversations', { token, body: { user_id: 32 } });
  const conversationId = (started.body['data'] as { id: string }).id;
  const sent = await api(url, 'POST', '/api/v1/chat/messages', { token, body: { conversation_id: conversationId, message: 'hi' } });
  expect(sent.status).toBe(201);
});

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

async function scrape(role: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${opsPorts.get(role)}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

/** Every metric some role declares on its /metrics, by name and type. */
async function everyRolesMetrics(): Promise<Map<string, string>> {
  const declared = new Map<string, string>();
  for (const [role] of ROLES) for (const [name, type] of declaredMetrics(await scrape(role))) declared.set(name, type);
  return declared;
}

/** The value of the series of `name` whose labels include `labels` (e.g. `consumer="fanout"`), else NaN. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(labels));
  return Number(line?.split(' ').at(-1));
}

function unexposedNames(expressions: readonly string[], declared: ReadonlyMap<string, string>): string[] {
  const names = new Set(expressions.flatMap((expression) => [...metricNamesIn(expression)]));
  return [...names].filter((name) => !SCRAPE_SERIES.has(name) && !isExposed(name, declared)).sort();
}

describe('the PromQL name extractor', () => {
  it('keeps metric names and drops functions, aggregations, keywords, labels, ranges and numbers', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le) (rate(chat_x_seconds_bucket{role="gateway"}[$__rate_interval]))) > 1e3')).toEqual(
      new Set(['chat_x_seconds_bucket']),
    );
    expect(metricNamesIn('(sum(a_total) or vector(0)) != 1 and on() b unless ignoring(job) c offset 5m')).toEqual(new Set(['a_total', 'b', 'c']));
    expect(metricNamesIn('up{job=~"chat-(relay|fanout)"} == 0')).toEqual(new Set(['up']));
    expect(metricNamesIn('max by (consumer) (lag) / count without (instance, role) (other:recorded)')).toEqual(new Set(['lag', 'other:recorded']));
  });

  it('counts a histogram\'s parts as exposed by the histogram, and nothing else', () => {
    const declared = declaredMetrics('# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 0\n# TYPE g gauge\ng 1\n');
    expect(['h', 'h_bucket', 'h_sum', 'h_count', 'g'].every((name) => isExposed(name, declared))).toBe(true);
    expect(['g_bucket', 'g_count', 'missing', 'h_total'].some((name) => isExposed(name, declared))).toBe(false);
  });
});

describe('the operators\' pack in deploy/', () => {
  it('alert rules name only metrics that some role exposes, and each alert has a runbook line', async () => {
    const rules = alertRules.parse(parse(read('deploy/prometheus/alerts.yml'))).groups.flatMap((group) => group.rules);
    const alerts = rules.map((rule) => rule.alert);
    expect(alerts).toEqual(
      expect.arrayContaining(['ChatRoleDown', 'ChatRoleNotReady', 'ChatRelayStalled', 'ChatRelayLeaderCount', 'ChatFanoutLeaderCount', 'ChatProjectionFailures', 'ChatDeliveryP99High', 'ChatConsumerLagHigh']),
    );
    expect(new Set(alerts).size).toBe(alerts.length);
    expect(unexposedNames(rules.map((rule) => rule.expr), await everyRolesMetrics())).toEqual([]);
    const runbook = read('docs/observability.md');
    for (const alert of alerts) expect(runbook, `docs/observability.md has no runbook line for ${alert}`).toContain(`\`${alert}\``);
  });

  it('dashboard panels query only metrics that some role exposes', async () => {
    const model = dashboard.parse(JSON.parse(read('deploy/grafana/chat-dashboard.json')));
    expect(model.panels.map((panel) => panel.title)).toEqual(
      expect.arrayContaining(['Send rate', 'Consumer lag (events not yet acked)', 'Relay lag', 'Sockets open', 'Errors']),
    );
    const expressions = model.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
    expect(unexposedNames(expressions, await everyRolesMetrics())).toEqual([]);
  });

  it('the gauges the rules rely on carry live values: positions, leaders, consumer lag, readiness', async () => {
    const head = z.object({ head: z.bigint() });
    const last = await pool.oneFirst(sql.type(head)`SELECT max(global_position) AS head FROM events`);
    await waitUntil('the relay checkpoint at the head of the log', async () => {
      const relay = await scrape('relay');
      return sample(relay, 'chat_relay_checkpoint_position') === Number(last) && sample(relay, 'chat_event_log_head_position') === Number(last);
    });
    expect(sample(await scrape('relay'), 'chat_relay_leader')).toBe(1);
    expect(sample(await scrape('fanout'), 'chat_fanout_leader')).toBe(1);
    await waitUntil('every consumer acked everything', async () =>
      sample(await scrape('projector'), 'chat_consumer_lag_messages', 'consumer="projector"') === 0 &&
      sample(await scrape('fanout'), 'chat_consumer_lag_messages', 'consumer="fanout"') === 0 &&
      sample(await scrape('notifier'), 'chat_consumer_lag_messages', 'consumer="notifier"') === 0,
    );
    // User 32 has no socket: the one message was notified.
    expect(sample(await scrape('notifier'), 'chat_notifier_messages_total', 'outcome="notified"')).toBe(1);
    for (const [role] of ROLES) expect(sample(await scrape(role), 'chat_role_ready'), role).toBe(1);
    expect(sample(await scrape('gateway'), 'chat_http_responses_total', 'code_class="2xx"')).toBe(2);
  });
});
