/** Label and field selectors as kube-apiserver parses them (the common subset). */
import { ApiError } from './status.js';
import type { KubeObject } from './types.js';

type Requirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] };

export type Matcher = (labels: Record<string, string> | undefined) => boolean;

/** Split on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x.length > 0);
}

const KEY = /^([A-Za-z0-9][-A-Za-z0-9_.]*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function checkKey(key: string, raw: string): string {
  if (!KEY.test(key)) throw new ApiError(400, `unable to parse requirement: invalid label key "${key}" in "${raw}"`, 'BadRequest');
  return key;
}

export function parseLabelSelector(sel: string | undefined): Matcher {
  if (!sel || !sel.trim()) return () => true;
  const reqs: Requirement[] = [];
  for (const part of splitTop(sel)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      const values = m[3].split(',').map((v) => v.trim()).filter((v) => v !== '');
      reqs.push({ key: checkKey(m[1], part), op: m[2] as 'in' | 'notin', values });
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      reqs.push({ key: checkKey(m[1], part), op: '!exists' });
    } else if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      reqs.push({ key: checkKey(m[1], part), op: m[2] === '!=' ? '!=' : '=', value: m[3] });
    } else if ((m = part.match(/^(\S+)$/))) {
      reqs.push({ key: checkKey(m[1], part), op: 'exists' });
    } else {
      throw new ApiError(400, `unable to parse requirement: "${part}"`, 'BadRequest');
    }
  }
  return (labels) => {
    const l = labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(l, r.key);
      switch (r.op) {
        case 'exists':
          return has;
        case '!exists':
          return !has;
        case '=':
          return has && l[r.key] === r.value;
        case '!=':
          return !has || l[r.key] !== r.value;
        case 'in':
          return has && r.values.includes(l[r.key]);
        case 'notin':
          return !has || !r.values.includes(l[r.key]);
      }
    });
  };
}

export type ObjectMatcher = (obj: KubeObject) => boolean;

function fieldValue(obj: KubeObject, path: string): string | undefined {
  let cur: unknown = obj;
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  if (cur === undefined || cur === null) return undefined;
  return String(cur);
}

/** Field selectors: metadata.name, metadata.namespace and (leniently) any dotted path, with =, ==, != */
export function parseFieldSelector(sel: string | undefined): ObjectMatcher {
  if (!sel || !sel.trim()) return () => true;
  const reqs: { path: string; neg: boolean; value: string }[] = [];
  for (const part of splitTop(sel)) {
    const m = part.match(/^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new ApiError(400, `invalid selector: '${sel}'; can't understand '${part}'`, 'BadRequest');
    reqs.push({ path: m[1], neg: m[2] === '!=', value: m[3] });
  }
  return (obj) =>
    reqs.every((r) => {
      const v = fieldValue(obj, r.path) ?? '';
      return r.neg ? v !== r.value : v === r.value;
    });
}
