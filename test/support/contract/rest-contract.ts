import { ContractViolation, describeAjvErrors, isObject, loadContract, type ContractDocuments, type JsonObject } from './contract-documents.js';

/** One REST answer as a test saw it: `body` is the parsed JSON, or `undefined` for an empty or non-JSON body. */
export type ObservedResponse = {
  readonly method: string;
  /** The request's path, query string allowed (ignored). */
  readonly path: string;
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
};

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/** `/api/v1/chat/conversations/{id}` as a RegExp over the request's pathname. */
const templatePattern = (template: string): RegExp =>
  new RegExp(`^${template.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+')}$`);

/** The documented operation of a method and path: its route template and responses, or null when none. */
export function documentedOperation(
  documents: ContractDocuments,
  method: string,
  pathname: string,
): { readonly template: string; readonly responses: JsonObject } | null {
  const paths = documents.openapi['paths'];
  if (!isObject(paths)) return null;
  for (const [template, item] of Object.entries(paths)) {
    if (!isObject(item) || !templatePattern(template).test(pathname)) continue;
    const operation = item[method.toLowerCase()];
    if (!isObject(operation)) return null;
    const responses = operation['responses'];
    return { template, responses: isObject(responses) ? responses : {} };
  }
  return null;
}

/** Every (method, route template) the document lists, as `GET /api/v1/chat/conversations/{id}`. */
export function documentedRoutes(documents: ContractDocuments = loadContract()): string[] {
  const paths = documents.openapi['paths'];
  if (!isObject(paths)) return [];
  return Object.entries(paths).flatMap(([template, item]) =>
    isObject(item) ? HTTP_METHODS.filter((method) => isObject(item[method])).map((method) => `${method.toUpperCase()} ${template}`) : [],
  );
}

function checkHeaders(documents: ContractDocuments, response: JsonObject, observed: ObservedResponse, where: string): void {
  const headers = response['headers'];
  if (!isObject(headers)) return;
  for (const [name, declared] of Object.entries(headers)) {
    const header = documents.resolve('openapi', declared);
    if (!header) continue;
    const value = observed.headers.get(name);
    if (value === null) {
      if (header['required'] === true) throw new ContractViolation(`${where}: required header ${name} is missing`);
      continue;
    }
    const schema = documents.resolve('openapi', header['schema']);
    if (!schema) continue;
    const typed = schema['type'] === 'integer' && /^-?[0-9]+$/.test(value) ? Number(value) : value;
    const validate = documents.compile('openapi', schema);
    if (!validate(typed)) throw new ContractViolation(`${where}: header ${name}: ${JSON.stringify(value)} ${describeAjvErrors(validate.errors)}`);
  }
}

/**
 * Checks one answer against docs/openapi.yaml: the route's operation (or `x-unrouted-responses` for a method
 * and path the document does not list) must document the status, and the body and headers must match it.
 * @throws ContractViolation naming the method, route template and status, with ajv's errors.
 */
export function checkResponse(observed: ObservedResponse, documents: ContractDocuments = loadContract()): void {
  const pathname = new URL(observed.path, 'http://gateway.invalid').pathname;
  const operation = documentedOperation(documents, observed.method, pathname);
  const route = operation ? `${observed.method.toUpperCase()} ${operation.template}` : `${observed.method.toUpperCase()} ${pathname} (not a documented route)`;
  const where = `${route} -> ${observed.status}`;
  const responses = operation?.responses ?? documents.openapi['x-unrouted-responses'];
  const response = isObject(responses) ? documents.resolve('openapi', responses[String(observed.status)]) : undefined;
  if (!response) throw new ContractViolation(`${where}: status ${observed.status} is not documented for this route`);
  checkHeaders(documents, response, observed, where);
  const content = response['content'];
  const media = isObject(content) ? content['application/json'] : undefined;
  if (!isObject(media)) {
    if (observed.body !== undefined) throw new ContractViolation(`${where}: the document gives this answer no body, it had ${JSON.stringify(observed.body)}`);
    return;
  }
  if (observed.body === undefined) throw new ContractViolation(`${where}: the document gives this answer a JSON body, it had none (or not JSON)`);
  const schema = media['schema'];
  if (schema === undefined) return;
  const validate = documents.compile('openapi', schema);
  if (!validate(observed.body)) {
    throw new ContractViolation(`${where}: body does not match docs/openapi.yaml: ${describeAjvErrors(validate.errors)}; body ${JSON.stringify(observed.body).slice(0, 600)}`);
  }
}
