import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser } from '@asyncapi/parser';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { DomainErrorCode } from '../../src/commands/domain-error.js';
import { DomainError } from '../../src/commands/domain-error.js';
import { describeError, GatewayError, type GatewayErrorCode } from '../../src/gateway/errors.js';
import { parseClientFrame } from '../../src/gateway/ws/client-frames.js';
import { eventFrameSchema } from '../../src/delivery/event-frames.js';
import { serverFrames } from '../../src/gateway/ws/server-frames.js';
import { ASYNCAPI_PATH, loadContract, OPENAPI_PATH, type JsonObject } from '../support/contract/contract-documents.js';
import { socketDocument } from '../support/contract/socket-contract.js';

/** The documents themselves: well-formed OpenAPI 3.1 and AsyncAPI 3.0, and in step with the code's lists. */

const openapiText = readFileSync(OPENAPI_PATH, 'utf8');
const asyncapiText = readFileSync(ASYNCAPI_PATH, 'utf8');

async function openapiProblems(document: Record<string, unknown>): Promise<unknown[]> {
  const validator = new Validator();
  const result = await validator.validate(document);
  return result.valid ? [] : [result.errors];
}

/** Spectral severities: 0 error, 1 warning, 2 information, 3 hint. */
const ERROR_OR_WARNING = 1;

/** The AsyncAPI parser's errors and warnings (not its infos and hints, such as "3.1.0 exists"). */
async function asyncapiProblems(text: string): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(text, { source: fileURLToPath(ASYNCAPI_PATH) });
  return diagnostics.filter((diagnostic) => Number(diagnostic.severity) <= ERROR_OR_WARNING).map((diagnostic) => `${diagnostic.code}: ${diagnostic.message} at ${diagnostic.path.join('.')}`);
}

const openapiCopy = (): JsonObject => parse(openapiText) as JsonObject;
const asyncapiCopy = (): JsonObject => parse(asyncapiText) as JsonObject;

describe('docs/openapi.yaml', () => {
  it('is a valid OpenAPI 3.1 document, and the structural check refuses a broken one', async () => {
    expect(await openapiProblems(openapiCopy())).toEqual([]);

    const noDescription = openapiCopy() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    noDescription.paths['/health']!['get']!.responses['200'] = { content: {} };
    expect(await openapiProblems(noDescription)).not.toEqual([]);
  });

  it('names every operation with a unique camelCase operationId', () => {
    const paths = loadContract().openapi['paths'] as Record<string, Record<string, { operationId?: string }>>;
    const ids = Object.values(paths).flatMap((item) => Object.values(item).flatMap((operation) => (typeof operation === 'object' && operation !== null && 'responses' in operation ? [operation.operationId] : [])));
    expect(ids.length).toBeGreaterThan(10);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z]+$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('docs/asyncapi.yaml', () => {
  it('is a valid AsyncAPI 3.0 document whose refs into openapi.yaml resolve, and the parser refuses a broken one', async () => {
    expect(await asyncapiProblems(asyncapiText)).toEqual([]);

    const badAction = asyncapiCopy() as { operations: Record<string, { action: string }> };
    badAction.operations['ping']!.action = 'publish';
    expect(await asyncapiProblems(stringify(badAction))).not.toEqual([]);

    const badRef = asyncapiCopy() as { components: { messages: Record<string, { payload: { properties: Record<string, unknown> } }> } };
    badRef.components.messages['presence']!.payload.properties['data'] = { $ref: './openapi.yaml#/components/schemas/NoSuchSchema' };
    expect(await asyncapiProblems(stringify(badRef))).not.toEqual([]);
  }, 30_000);

  it('lists exactly the client frame types the gateway parses', () => {
    const documented = [...socketDocument().clientFrames.keys()];
    expect(documented.sort()).toEqual(['auth', 'join_conversation', 'ping', 'read', 'resume', 'send_message', 'typing']);
    for (const type of documented) {
      const parsed = parseClientFrame(JSON.stringify({ type }));
      expect(parsed.ok || parsed.error.code !== 'unknown_type', type).toBe(true);
    }
    const unknown = parseClientFrame(JSON.stringify({ type: 'not_a_frame' }));
    expect(unknown.ok ? null : unknown.error.code).toBe('unknown_type');
  });

  it('lists exactly the server frame types the gateway and the fan-out build', () => {
    const now = new Date();
    const gatewayFrames = [
      serverFrames.connected(now, 1),
      serverFrames.ack(now, 'r', {}),
      serverFrames.error(now, undefined, 'internal', 'x'),
      serverFrames.pong(now, undefined),
      serverFrames.typing(now, 'c', 1, true),
      serverFrames.presence(now, 1, true, null),
      serverFrames.resyncRequired(now, 'x'),
    ].map((frame) => frame.type);
    expect(Object.keys(serverFrames)).toHaveLength(gatewayFrames.length);
    const eventFrames = eventFrameSchema.options.map((option) => option.shape.type.value);
    expect([...socketDocument().serverFrames.keys()].sort()).toEqual([...gatewayFrames, ...eventFrames].sort());
  });
});

const GATEWAY_CODES = {
  unauthorized: true,
  invalid_json: true,
  invalid_input: true,
  unknown_type: true,
  not_found: true,
  rate_limited: true,
  payload_too_large: true,
  invalid_cursor: true,
  read_model_behind: true,
  unavailable: true,
} as const satisfies Record<GatewayErrorCode, true>;

const DOMAIN_CODES = {
  not_found: true,
  self_conversation: true,
  conversation_exists: true,
  blank_message: true,
  too_long: true,
  invalid_characters: true,
  invalid_client_msg_id: true,
  client_msg_id_conflict: true,
  blocked: true,
  forbidden: true,
} as const satisfies Record<DomainErrorCode, true>;

describe('error codes', () => {
  const answers = [
    ...Object.keys(GATEWAY_CODES).map((code) => describeError(new GatewayError(code as GatewayErrorCode, 'x'))),
    ...Object.keys(DOMAIN_CODES).map((code) => describeError(new DomainError(code as DomainErrorCode, 'x'))),
    describeError(new Error('unexpected')),
  ];

  it('the REST Error code enum is every code errors.ts gives REST answers', () => {
    const schemas = (loadContract().openapi['components'] as { schemas: Record<string, { enum: string[] }> }).schemas;
    expect([...schemas['ErrorCode']!.enum].sort()).toEqual([...new Set(answers.map((answer) => answer.restCode))].sort());
  });

  it('the WebSocket error frame code enum is every code errors.ts gives error frames', () => {
    const schemas = (loadContract().asyncapi['components'] as { schemas: Record<string, { enum: string[] }> }).schemas;
    expect([...schemas['ErrorCode']!.enum].sort()).toEqual([...new Set(answers.map((answer) => answer.wsCode))].sort());
  });
});
