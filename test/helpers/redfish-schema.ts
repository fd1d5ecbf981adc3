/**
 * The one ajv setup for validating Redfish payloads against the DMTF schemas the generator bundled
 * (generated/redfish/openapi.bundled.json), shared by every schema test.
 * - DMTF writes allowed property-name patterns as `x-patternProperties` (OpenAPI 3.0 has no
 *   patternProperties): they become patternProperties.
 * - Annotations (`X@Redfish.AllowableValues`, `@odata.etag`, `X@Message.ExtendedInfo`) are allowed where
 *   a schema forbids other extra properties, as the DMTF Service Validator allows them.
 * - Formats (uri-reference, date-time, ...) are checked with ajv-formats.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { expect } from 'chai';

const ANNOTATION = '^([a-zA-Z_][a-zA-Z0-9_]*)?@(odata|Redfish|Message)\\.[a-zA-Z_][a-zA-Z0-9_]*$';

function allowAnnotations(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(allowAnnotations);
  if (typeof x !== 'object' || x === null) return x;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k === 'x-patternProperties' ? 'patternProperties' : k] = allowAnnotations(v);
  if (out.additionalProperties === false) {
    out.patternProperties = { [ANNOTATION]: {}, ...(out.patternProperties as Record<string, unknown> | undefined) };
  }
  return out;
}

let ajv: Ajv | undefined;

function instance(): Ajv {
  if (ajv) return ajv;
  const spec = JSON.parse(readFileSync(new URL('../../generated/redfish/openapi.bundled.json', import.meta.url), 'utf8')) as {
    components: Record<string, unknown>;
  };
  const a = new Ajv({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv) => void)(a);
  a.addSchema({ components: allowAnnotations(spec.components) }, 'spec');
  return (ajv = a);
}

/** The validator of one bundled schema, e.g. 'ComputerSystem_ComputerSystem'; undefined if there is none. */
export function schemaValidator(name: string): ValidateFunction | undefined {
  return instance().getSchema(`spec#/components/schemas/${name}`);
}

/** Asserts that `body` conforms to the bundled schema `name` (which must exist). */
export function expectConforms(name: string, body: unknown): void {
  const validate = schemaValidator(name);
  if (!validate) throw new Error(`no schema ${name}`);
  expect(validate(body), `${name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`).to.equal(true);
}
