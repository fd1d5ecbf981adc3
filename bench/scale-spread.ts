/**
 * What made the per-VM agent's RSS grow under Redfish GETs (issue 16, docs/scale.md "Memory after
 * load"): on Node 20 (V8 11.3) an object literal that starts with a spread and then adds keys,
 * `{ ...body, '@odata.etag': etag }`, leaves ~200 bytes per evaluation that survive young-generation
 * GCs (V8 promotes them to the old generation, where only a full GC frees them). The survivors make
 * V8 grow the young generation towards its 16 MB semi-space limit, and the promoted garbage piles up
 * in the old generation between full GCs: both count in RSS. `{ ...body }` alone, Object.assign, a
 * literal without a spread and one whose spread comes after a key do not do it.
 *
 * Each pattern runs in its own `node --trace-gc-nvp` process (a synchronous loop that keeps nothing);
 * the figure is the bytes the scavenger promoted per evaluation, beside the no-copy baseline of the
 * same run. Env: BENCH_SPREAD_ITERS (default 300000).
 */
import { execFileSync } from 'node:child_process';

const ITERS = Number(process.env.BENCH_SPREAD_ITERS ?? 300_000);

const patterns: Record<string, string> = {
  'no copy (baseline)': 'b',
  '{ ...b }': '({ ...b })',
  '{ ...b, k: v }': "({ ...b, '@odata.etag': 'W/' + i })",
  '{ ...b } then p[k] = v': "((p) => { p['@odata.etag'] = 'W/' + i; return p; })({ ...b })",
  'Object.assign({}, b, { k: v })': "Object.assign({}, b, { '@odata.etag': 'W/' + i })",
  'c ? { k, Boot } : { Boot }': "(i % 2 ? { AssetTag: 'x', Boot: b.Boot } : { Boot: b.Boot })",
  '{ ...(c ? { k } : {}), Boot }': "({ ...(i % 2 ? { AssetTag: 'x' } : {}), Boot: b.Boot })",
  '{ Id, Name, ...(c ? { k } : {}) }': "({ Id: b.Id, Name: b.Name, ...(i % 2 ? { Context: 'x' } : {}) })",
};

function run(expr: string): { promotedPerEval: number } {
  const script = `
const mk = (i) => ({ '@odata.id': '/redfish/v1/Systems/1', Id: '1', Name: 'vm-' + i, PowerState: 'On',
  Status: { State: 'Enabled', Health: 'OK' }, Boot: { BootSourceOverrideTarget: 'None', Allowed: ['None', 'Pxe', 'Cd', 'Hdd'] },
  Links: { Chassis: [{ '@odata.id': '/redfish/v1/Chassis/1' }], ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }] } });
let sink = 0;
for (let i = 0; i < ${ITERS}; i++) { const b = mk(i); const p = ${expr}; sink += Object.keys(p).length; }
if (sink === 0) process.exit(1);`;
  const out = execFileSync(process.execPath, ['--trace-gc-nvp', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  let promoted = 0;
  for (const m of out.matchAll(/\bpromoted=(\d+)/g)) promoted += Number(m[1]);
  return { promotedPerEval: promoted / ITERS };
}

const rows = Object.entries(patterns).map(([name, expr]) => ({ name, ...run(expr) }));
const base = rows[0]!.promotedPerEval || 1;
console.log(`bytes promoted by young-generation GCs per evaluation, ${ITERS} evaluations each, node ${process.version}`);
for (const r of rows) {
  console.log(`${r.name.padEnd(40)} ${r.promotedPerEval.toFixed(1).padStart(7)} B  (${(r.promotedPerEval / base).toFixed(1)} x baseline)`);
}
