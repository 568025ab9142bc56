import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

/**
 * docs/openapi.yaml and docs/asyncapi.yaml, read once per process, with one Ajv (JSON Schema 2020-12, formats)
 * that knows the schemas of both: a `$ref` of either document, also the AsyncAPI's `./openapi.yaml#/...`, resolves.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const OPENAPI_PATH = new URL('../../../docs/openapi.yaml', import.meta.url);
export const ASYNCAPI_PATH = new URL('../../../docs/asyncapi.yaml', import.meta.url);

const OPENAPI_ID = 'https://matcha.chat/docs/openapi.yaml';
const ASYNCAPI_ID = 'https://matcha.chat/docs/asyncapi.yaml';

/** A response or frame that the documents do not allow. */
export class ContractViolation extends Error {
  override readonly name = 'ContractViolation';
}

export type ContractDocuments = {
  readonly openapi: JsonObject;
  readonly asyncapi: JsonObject;
  /** Compiles a schema taken from `document` (its refs as that document writes them); cached by identity. */
  compile(document: 'openapi' | 'asyncapi', schema: Json): ValidateFunction;
  /** Follows a local `$ref` (`#/components/...`) of `document` until an object without one. */
  resolve(document: 'openapi' | 'asyncapi', node: Json | undefined): JsonObject | undefined;
};

export const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every schema ref, made absolute: `#/components/schemas/X` and `./openapi.yaml#/components/schemas/X` to `<id>#/$defs/X`. */
function absoluteRefs(node: Json, ownId: string): Json {
  if (Array.isArray(node)) return node.map((item) => absoluteRefs(item, ownId));
  if (!isObject(node)) return node;
  const copy: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string') {
      const [file, pointer = ''] = value.split('#');
      const base = file === '' ? ownId : file === './openapi.yaml' ? OPENAPI_ID : file === './asyncapi.yaml' ? ASYNCAPI_ID : null;
      if (base === null || !pointer.startsWith('/components/schemas/')) throw new ContractViolation(`unsupported schema $ref ${value} in ${ownId}`);
      copy[key] = `${base}#/$defs/${pointer.slice('/components/schemas/'.length)}`;
    } else {
      copy[key] = absoluteRefs(value, ownId);
    }
  }
  return copy;
}

const componentSchemas = (document: JsonObject): JsonObject => {
  const components = document['components'];
  const schemas = isObject(components) ? components['schemas'] : undefined;
  return isObject(schemas) ? schemas : {};
};

/** Builds the documents' validator from their parsed YAML (the unit tests pass altered copies). */
export function contractDocuments(openapi: JsonObject, asyncapi: JsonObject): ContractDocuments {
  const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
  const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true }));
  const ids = { openapi: OPENAPI_ID, asyncapi: ASYNCAPI_ID } as const;
  ajv.addSchema({ $id: OPENAPI_ID, $defs: absoluteRefs(componentSchemas(openapi), OPENAPI_ID) });
  ajv.addSchema({ $id: ASYNCAPI_ID, $defs: absoluteRefs(componentSchemas(asyncapi), ASYNCAPI_ID) });
  const compiled = new WeakMap<object, ValidateFunction>();
  const documents = { openapi, asyncapi };
  return {
    openapi,
    asyncapi,
    compile(document, schema) {
      const key = isObject(schema) ? schema : { schema };
      let validate = compiled.get(key);
      if (!validate) {
        validate = ajv.compile(absoluteRefs(schema, ids[document]) as object);
        compiled.set(key, validate);
      }
      return validate;
    },
    resolve(document, node) {
      let current = node;
      for (let hops = 0; isObject(current) && typeof current['$ref'] === 'string'; hops++) {
        const ref = current['$ref'];
        if (hops > 8 || !ref.startsWith('#/')) throw new ContractViolation(`cannot follow $ref ${ref}`);
        current = ref
          .slice(2)
          .split('/')
          .reduce<Json | undefined>((at, key) => (isObject(at) ? at[key] : undefined), documents[document]);
      }
      return isObject(current) ? current : undefined;
    },
  };
}

const readYaml = (path: URL): JsonObject => {
  const parsed: unknown = parse(readFileSync(path, 'utf8'));
  if (!isObject(parsed)) throw new ContractViolation(`${path.pathname} is not a YAML mapping`);
  return parsed;
};

let loaded: ContractDocuments | undefined;

/** The repository's documents, loaded and compiled on first use, then shared by every check in this process. */
export function loadContract(): ContractDocuments {
  loaded ??= contractDocuments(readYaml(OPENAPI_PATH), readYaml(ASYNCAPI_PATH));
  return loaded;
}

export const readContractYaml = readYaml;

export function describeAjvErrors(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((error) => `${error.instancePath || '(root)'} ${error.message ?? ''} ${JSON.stringify(error.params)}`).join('; ');
}
