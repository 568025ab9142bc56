import type { ValidateFunction } from 'ajv';
import { ContractViolation, describeAjvErrors, isObject, loadContract, type ContractDocuments, type JsonObject } from './contract-documents.js';

/**
 * docs/asyncapi.yaml as a checker of one socket's traffic. The document's `receive` operations are the client
 * frames (and their `reply` messages the answers to each); its `send` operations are the frames the gateway
 * sends on its own. A frame is told apart by its payload's `type` const.
 */

type MessageCheck = { readonly name: string; readonly validate: ValidateFunction };
type ClientOperation = { readonly frame: MessageCheck; readonly replies: readonly MessageCheck[] };

export type SocketDocument = {
  readonly clientFrames: ReadonlyMap<string, ClientOperation>;
  readonly serverFrames: ReadonlyMap<string, readonly MessageCheck[]>;
  readonly closeCodes: ReadonlySet<number>;
  readonly upgradeRefusals: ReadonlySet<number>;
};

const compiledDocuments = new WeakMap<ContractDocuments, SocketDocument>();

function frameType(message: JsonObject): string {
  const payload = isObject(message['payload']) ? message['payload'] : {};
  const properties = isObject(payload['properties']) ? payload['properties'] : {};
  const type = isObject(properties['type']) ? properties['type']['const'] : undefined;
  if (typeof type !== 'string') throw new ContractViolation(`docs/asyncapi.yaml: message ${JSON.stringify(message['name'])} has no payload type const`);
  return type;
}

/** The checks of docs/asyncapi.yaml, built once per set of documents. */
export function socketDocument(documents: ContractDocuments = loadContract()): SocketDocument {
  const cached = compiledDocuments.get(documents);
  if (cached) return cached;
  const { asyncapi } = documents;
  const message = (ref: unknown): MessageCheck & { readonly type: string } => {
    const resolved = documents.resolve('asyncapi', ref as JsonObject);
    if (!resolved) throw new ContractViolation(`docs/asyncapi.yaml: message ${JSON.stringify(ref)} does not resolve`);
    const type = frameType(resolved);
    const title = typeof resolved['title'] === 'string' ? resolved['title'] : type;
    return { name: title, type, validate: documents.compile('asyncapi', resolved['payload'] ?? {}) };
  };
  const clientFrames = new Map<string, ClientOperation>();
  const serverFrames = new Map<string, MessageCheck[]>();
  const addServerFrame = (check: MessageCheck & { readonly type: string }): void => {
    const known = serverFrames.get(check.type) ?? [];
    if (!known.some((other) => other.name === check.name)) known.push(check);
    serverFrames.set(check.type, known);
  };
  const operations = isObject(asyncapi['operations']) ? asyncapi['operations'] : {};
  for (const [name, operation] of Object.entries(operations)) {
    if (!isObject(operation)) continue;
    const messages = Array.isArray(operation['messages']) ? operation['messages'].map(message) : [];
    const reply = isObject(operation['reply']) && Array.isArray(operation['reply']['messages']) ? operation['reply']['messages'].map(message) : [];
    reply.forEach(addServerFrame);
    if (operation['action'] === 'send') {
      messages.forEach(addServerFrame);
    } else if (operation['action'] === 'receive') {
      for (const frame of messages) clientFrames.set(frame.type, { frame, replies: reply });
    } else {
      throw new ContractViolation(`docs/asyncapi.yaml: operation ${name} has action ${JSON.stringify(operation['action'])}`);
    }
  }
  const channels = isObject(asyncapi['channels']) ? Object.values(asyncapi['channels']).filter(isObject) : [];
  const codes = (pick: (channel: JsonObject) => unknown) =>
    new Set(channels.flatMap((channel) => { const listed = pick(channel); return isObject(listed) ? Object.keys(listed).map(Number) : []; }));
  const built: SocketDocument = {
    clientFrames,
    serverFrames,
    closeCodes: codes((channel) => channel['x-close-codes']),
    upgradeRefusals: codes((channel) => (isObject(channel['x-upgrade-refusals']) ? channel['x-upgrade-refusals']['statuses'] : undefined)),
  };
  compiledDocuments.set(documents, built);
  return built;
}

const describe = (value: unknown): string => JSON.stringify(value).slice(0, 600);

function firstMatch(checks: readonly MessageCheck[], frame: unknown, where: string): void {
  if (checks.length === 0) throw new ContractViolation(`${where}: no such frame in docs/asyncapi.yaml: ${describe(frame)}`);
  if (checks.some((check) => check.validate(frame))) return;
  const reasons = checks.map((check) => {
    check.validate(frame);
    return `${check.name}: ${describeAjvErrors(check.validate.errors)}`;
  });
  throw new ContractViolation(`${where}: frame does not match docs/asyncapi.yaml (${reasons.join(' | ')}): ${describe(frame)}`);
}

/** Codes with which the gateway refuses a frame as malformed: the document must refuse that frame too. */
const MALFORMED = new Set(['invalid_frame', 'unknown_type']);

export type SocketContract = {
  /** A frame the test sends (an object, or the text sent as is). */
  sent(frame: unknown): void;
  /** A frame the gateway sent. @throws ContractViolation */
  received(frame: unknown): void;
  /** The socket's close code. @throws ContractViolation when undocumented */
  closed(code: number): void;
};

/**
 * One socket's check. Frames received are checked against the server frames of their type; the answer to a
 * frame sent with a `request_id` (`ack`, `error`, `pong`) is checked against that frame's replies, and the
 * frame sent is checked with it: a frame the gateway acknowledged must be a documented client frame, and one it
 * refused as malformed (`invalid_frame`, `unknown_type`) must not be.
 */
export function socketContract(documents: ContractDocuments = loadContract()): SocketContract {
  const socket = socketDocument(documents);
  const awaitingAnswer = new Map<unknown, JsonObject>();
  return {
    sent(frame) {
      let parsed: unknown = frame;
      if (typeof frame === 'string') {
        try {
          parsed = JSON.parse(frame);
        } catch {
          return;
        }
      }
      if (isObject(parsed) && parsed['request_id'] !== undefined) awaitingAnswer.set(parsed['request_id'], parsed);
    },
    received(frame) {
      if (!isObject(frame) || typeof frame['type'] !== 'string') throw new ContractViolation(`a server frame without a string type: ${describe(frame)}`);
      const { type } = frame;
      const request = ['ack', 'error', 'pong'].includes(type) ? awaitingAnswer.get(frame['request_id']) : undefined;
      if (!request) return firstMatch(socket.serverFrames.get(type) ?? [], frame, `server frame ${type}`);
      awaitingAnswer.delete(frame['request_id']);
      const requestType = typeof request['type'] === 'string' ? request['type'] : JSON.stringify(request['type']);
      const where = `${type} to client frame ${requestType}`;
      const operation = socket.clientFrames.get(requestType);
      const code = isObject(frame['data']) ? frame['data']['code'] : undefined;
      const refusedAsMalformed = type === 'error' && typeof code === 'string' && MALFORMED.has(code);
      if (!operation) {
        if (!refusedAsMalformed) throw new ContractViolation(`${where}: the gateway answered ${describe(frame)} to a frame type docs/asyncapi.yaml does not list`);
        return firstMatch(socket.serverFrames.get(type) ?? [], frame, where);
      }
      const documentAccepts = operation.frame.validate(request);
      if (type !== 'error' && !documentAccepts) {
        throw new ContractViolation(`${where}: the gateway accepted a frame docs/asyncapi.yaml refuses (${describeAjvErrors(operation.frame.validate.errors)}): ${describe(request)}`);
      }
      if (refusedAsMalformed && documentAccepts) {
        throw new ContractViolation(`${where}: the gateway refused as ${String(code)} a frame docs/asyncapi.yaml allows: ${describe(request)}`);
      }
      firstMatch(operation.replies, frame, where);
    },
    closed(code) {
      if (!socket.closeCodes.has(code)) throw new ContractViolation(`close code ${code} is not in docs/asyncapi.yaml x-close-codes`);
    },
  };
}

/** @throws ContractViolation for an upgrade refusal status docs/asyncapi.yaml does not list. */
export function checkUpgradeRefusal(status: number, documents: ContractDocuments = loadContract()): void {
  if (!socketDocument(documents).upgradeRefusals.has(status)) {
    throw new ContractViolation(`upgrade refused with HTTP ${status}, which docs/asyncapi.yaml x-upgrade-refusals does not list`);
  }
}
