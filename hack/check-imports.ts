/**
 * Import direction check for src/ (run by `make lint`, or `npx tsx hack/check-imports.ts`).
 *
 * Reads every import/export-from/dynamic import of every .ts file under src/, maps each file to
 * its folder (src/<folder>/...) and checks three things:
 *   1. every import between folders is allowed by ALLOWED below (who may import whom);
 *   2. the folder graph has no cycle (strongly connected components of more than one folder);
 *   3. no cycle between files either (the same as `madge --circular`, without the dependency).
 * `--graph` prints the folder graph with edge counts. Exits 1 on any violation or cycle.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

/**
 * Who may import whom (besides itself). The layers, bottom up: common; accounts, kube; backend;
 * events (which may also write Kubernetes Events through kube); ipmi, redfish; agent, controller; cmd. `generated` is the code made from the Redfish
 * OpenAPI spec (generated/redfish), imported by redfish and by the events registry.
 */
const ALLOWED: Record<string, readonly string[]> = {
  common: [],
  accounts: ['common', 'backend'],
  kube: ['common'],
  backend: ['common', 'kube'],
  events: ['common', 'backend', 'kube', 'generated'],
  ipmi: ['common', 'accounts', 'backend', 'events'],
  redfish: ['common', 'accounts', 'backend', 'events', 'generated'],
  agent: ['common', 'accounts', 'backend', 'events', 'ipmi', 'redfish', 'kube'],
  controller: ['common', 'kube'],
  cmd: ['common', 'accounts', 'backend', 'kube', 'agent', 'controller', 'ipmi', 'redfish', 'events'],
};

/** Bare packages only some folders may use: Kubernetes stays behind kube/, backend/kubevirt and the controller. */
const PACKAGE_RULES: { pkg: string; allowed: readonly string[] }[] = [
  { pkg: '@kubernetes/client-node', allowed: ['src/kube/', 'src/backend/kubevirt/', 'src/controller/'] },
];

/**
 * Imports that break the rule today and are being moved in this session; reported as warnings
 * (not failures) so the work in flight keeps building. Remove an entry once its import is gone.
 */
const PENDING: { from: string; to: string; why: string }[] = [];

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Module specifiers of static imports, re-exports, side-effect imports and dynamic imports. */
export function specifiers(code: string): string[] {
  const text = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1]!);
  return out;
}

/** The file an import resolves to (relative imports end in .js and name a .ts file). */
function resolveImport(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const p = resolve(dirname(from), spec);
  return p.endsWith('.js') ? p.slice(0, -3) + '.ts' : p;
}

/** src/<folder>/… → folder; generated/… → "generated"; anything else → undefined. */
function folderOf(file: string): string | undefined {
  const r = relative(root, file).split(sep);
  if (r[0] === 'generated') return 'generated';
  if (r[0] !== 'src' || r.length < 3) return r[0] === 'src' ? '(src root)' : r[0];
  return r[1];
}

const rel = (f: string) => relative(root, f).split(sep).join('/');

function pendingFor(from: string, to: string): (typeof PENDING)[number] | undefined {
  return PENDING.find((p) => rel(from).startsWith(p.from) && rel(to) === p.to);
}

/** Cycles among the nodes of a graph: Tarjan's strongly connected components larger than one node. */
export function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

function main(): number {
  const files = walk(src);
  const violations: string[] = [];
  const warnings: string[] = [];
  const fileGraph = new Map<string, Set<string>>();
  const folderGraph = new Map<string, Set<string>>();
  const edgeCount = new Map<string, number>();
  for (const f of files) {
    const from = folderOf(f)!;
    const deps = new Set<string>();
    fileGraph.set(rel(f), deps);
    if (!folderGraph.has(from)) folderGraph.set(from, new Set());
    for (const spec of specifiers(readFileSync(f, 'utf8'))) {
      for (const rule of PACKAGE_RULES) {
        if ((spec === rule.pkg || spec.startsWith(rule.pkg + '/')) && !rule.allowed.some((a) => rel(f).startsWith(a))) {
          violations.push(`${rel(f)} imports ${spec} (only ${rule.allowed.join(', ')} may)`);
        }
      }
      const target = resolveImport(f, spec);
      if (!target) continue;
      const to = folderOf(target)!;
      if (to === 'test' || to === 'bench' || to === 'hack' || to === 'fuzz') {
        violations.push(`${rel(f)} imports ${spec}: src/ never imports ${to}/`);
        continue;
      }
      if (rel(target).startsWith('src/')) deps.add(rel(target));
      if (to === from) continue;
      const pending = pendingFor(f, target);
      if (!(ALLOWED[from] ?? []).includes(to)) {
        if (pending) {
          warnings.push(`${rel(f)} imports ${rel(target)}: ${pending.why}`);
          continue; // not an edge of the intended graph either
        }
        violations.push(`${rel(f)} imports ${rel(target)}: ${from} may not import ${to} (allowed: ${(ALLOWED[from] ?? []).join(', ') || 'nothing'})`);
      }
      folderGraph.get(from)!.add(to);
      edgeCount.set(`${from} -> ${to}`, (edgeCount.get(`${from} -> ${to}`) ?? 0) + 1);
    }
  }
  const folderCycles = cycles(folderGraph);
  const fileCycles = cycles(fileGraph);
  if (process.argv.includes('--graph')) {
    for (const [e, n] of [...edgeCount].sort()) console.log(`${e}  (${n})`);
  }
  for (const w of warnings) console.warn(`pending: ${w}`);
  for (const v of violations) console.error(`import rule: ${v}`);
  for (const c of folderCycles) console.error(`folder cycle: ${c.join(' <-> ')}`);
  for (const c of fileCycles) console.error(`file cycle: ${c.join(' <-> ')}`);
  const bad = violations.length + folderCycles.length + fileCycles.length;
  console.log(
    `check-imports: ${files.length} files, ${edgeCount.size} folder edges, ${violations.length} violations, ` +
      `${folderCycles.length} folder cycles, ${fileCycles.length} file cycles, ${warnings.length} pending`,
  );
  return bad === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
