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

/** The first `n` capture groups of a match whose groups all take part (a regex without optional groups). */
function groups(m: RegExpMatchArray, n: number): string[] {
  const out = m.slice(1, n + 1);
  if (out.length !== n || out.some((g) => g === undefined)) throw new Error(`selector pattern ${String(m.input)}: a capture group did not take part`);
  return out as string[];
}

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
      const [key, op, list] = groups(m, 3) as [string, 'in' | 'notin', string];
      const values = list.split(',').map((v) => v.trim()).filter((v) => v !== '');
      reqs.push({ key: checkKey(key, part), op, values });
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      const [key] = groups(m, 1) as [string];
      reqs.push({ key: checkKey(key, part), op: '!exists' });
    } else if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      const [key, op, value] = groups(m, 3) as [string, string, string];
      reqs.push({ key: checkKey(key, part), op: op === '!=' ? '!=' : '=', value });
    } else if ((m = part.match(/^(\S+)$/))) {
      const [key] = groups(m, 1) as [string];
      reqs.push({ key: checkKey(key, part), op: 'exists' });
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
          return has && r.values.includes(l[r.key] as string);
        case 'notin':
          return !has || !r.values.includes(l[r.key] as string);
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
    const [path, op, value] = groups(m, 3) as [string, string, string];
    reqs.push({ path, neg: op === '!=', value });
  }
  return (obj) =>
    reqs.every((r) => {
      const v = fieldValue(obj, r.path) ?? '';
      return r.neg ? v !== r.value : v === r.value;
    });
}
