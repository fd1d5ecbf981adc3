/**
 * The SSE `$filter` (DSP0266 "Server-sent events"): `Property eq 'value'` terms joined by `and` /
 * `or` (and binds tighter), with the properties EventService.SSEFilterPropertiesSupported names:
 * EventFormatType, MessageId, OriginResource, RegistryPrefix, ResourceType. Parentheses and other
 * operators are refused with a clear error.
 *
 * MessageId matches the full id ("ResourceEvent.1.4.3.ResourcePoweredOn") or its
 * versionless form ("ResourceEvent.ResourcePoweredOn"); OriginResource matches the origin's
 * @odata.id exactly.
 */
import type { BmcEvent } from './hub.js';

export type SseFilter = (e: BmcEvent) => boolean;

const PROPERTIES: Readonly<Record<string, (e: BmcEvent, v: string) => boolean>> = {
  EventFormatType: (_e, v) => v === 'Event',
  MessageId: (e, v) => v === e.messageId || v === `${e.registryPrefix}.${e.messageId.split('.').pop() ?? ''}`,
  OriginResource: (e, v) => v === e.origin,
  RegistryPrefix: (e, v) => v === e.registryPrefix,
  ResourceType: (e, v) => v === e.resourceType,
};

const MAX_FILTER = 2048;

/** Parse a $filter; throws an Error saying what is wrong. */
export function parseSseFilter(text: string): SseFilter {
  if (text.length > MAX_FILTER) throw new Error(`$filter longer than ${MAX_FILTER} characters`);
  const tokens: string[] = [];
  const re = /\s*(?:'((?:[^']|'')*)'|([A-Za-z][A-Za-z0-9_]*)|(\S))/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < text.length && (m = re.exec(text)) !== null) {
    pos = re.lastIndex;
    if (m[1] !== undefined) tokens.push(`'${m[1].replace(/''/g, "'")}`);
    else if (m[2] !== undefined) tokens.push(m[2]);
    else throw new Error(`unexpected '${m[3] ?? ''}' in $filter (only Property eq 'value' joined by and/or)`);
    if (text.slice(pos).trim() === '') break;
  }
  if (tokens.length === 0) throw new Error('empty $filter');
  // or-of-ands
  const alternatives: SseFilter[][] = [[]];
  let i = 0;
  for (;;) {
    const prop = tokens[i];
    const op = tokens[i + 1];
    const value = tokens[i + 2];
    if (prop === undefined || prop.startsWith("'") || !Object.hasOwn(PROPERTIES, prop)) {
      throw new Error(`unsupported $filter property ${prop ?? '(none)'}; supported: ${Object.keys(PROPERTIES).join(', ')}`);
    }
    if (op !== 'eq') throw new Error(`only the eq operator is supported (got ${op ?? 'nothing'} after ${prop})`);
    if (value === undefined || !value.startsWith("'")) throw new Error(`${prop} eq needs a quoted value`);
    const test = PROPERTIES[prop] as (e: BmcEvent, v: string) => boolean;
    const v = value.slice(1);
    (alternatives[alternatives.length - 1] as SseFilter[]).push((e) => test(e, v));
    i += 3;
    if (i >= tokens.length) break;
    const join = tokens[i];
    if (join === 'or') alternatives.push([]);
    else if (join !== 'and') throw new Error(`expected and/or, got ${join ?? ''}`);
    i++;
    if (i >= tokens.length) throw new Error(`$filter ends after ${join}`);
  }
  return (e) => alternatives.some((all) => all.every((t) => t(e)));
}
