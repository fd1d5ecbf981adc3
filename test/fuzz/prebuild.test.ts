/**
 * hack/fuzz/glibc236-prebuild.ts on the Jazzer.js prebuild that npm installed: the two C23
 * functions are rebound to the classic ones, the two newer version requirements become weak, the
 * result loads in this node (Debian 12: glibc 2.36) and exports what @jazzer.js/fuzzer 4.0.0's
 * JavaScript calls, and a file that is not the expected shape is refused.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { patchPrebuild } from '../../hack/fuzz/glibc236-prebuild.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIR = join(ROOT, 'node_modules/@jazzer.js/fuzzer/prebuilds');
const ADDON = join(DIR, 'fuzzer-linux-x64.node');

/** The file as npm shipped it (ensure-addon.sh keeps it as *.orig once it has patched in place). */
function original(): Buffer {
  return readFileSync(existsSync(`${ADDON}.orig`) ? `${ADDON}.orig` : ADDON);
}

/** require() the addon in a fresh node with every symbol bound at load (LD_BIND_NOW), so a missing one fails here */
const requireIn = (file: string) =>
  spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(file)}); console.log(Object.keys(a).sort().join(' '))`], {
    encoding: 'utf8',
    env: { ...process.env, LD_BIND_NOW: '1' },
  });

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime ?? '';
const [major = 0, minor = 0] = glibc.split('.').map(Number);

describe('the Jazzer.js prebuild retargeted to glibc 2.36', function () {
  let tmp: string;
  before(function () {
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip(); // the retargeting is for linux-x64 only
    tmp = mkdtempSync(join(tmpdir(), 'jazzer-prebuild-'));
  });
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  it('rebinds __isoc23_strtol/strtoul to strtol/strtoul@GLIBC_2.2.5 and weakens GLIBC_2.38 and GLIBCXX_3.4.32', () => {
    const elf = Buffer.from(original());
    const before = Buffer.from(elf);
    const r = patchPrebuild(elf);
    expect(r.renamed.sort()).to.deep.equal(['__isoc23_strtol -> strtol@GLIBC_2.2.5', '__isoc23_strtoul -> strtoul@GLIBC_2.2.5']);
    expect(r.weakened.sort()).to.deep.equal(['GLIBCXX_3.4.32 (libstdc++.so.6)', 'GLIBC_2.38 (libc.so.6)']);
    expect(elf.length).to.equal(before.length);
    // only table entries change: a handful of bytes, no code
    let changed = 0;
    for (let i = 0; i < elf.length; i++) if (elf[i] !== before[i]) changed++;
    expect(changed).to.be.greaterThan(0).and.at.most(16);
  });

  it('the result loads here and exports what @jazzer.js/fuzzer 4.0.0 calls', () => {
    const elf = Buffer.from(original());
    if (major * 100 + minor < 238) {
      // the problem being solved: the file as shipped does not load on this glibc
      const shipped = join(tmp, 'shipped.node');
      writeFileSync(shipped, elf);
      const r = requireIn(shipped);
      expect(r.status).to.not.equal(0);
      expect(r.stderr).to.match(/GLIBC_2\.38|GLIBCXX_3\.4\.32/);
    }
    patchPrebuild(elf);
    const file = join(tmp, 'fuzzer-linux-x64.node');
    writeFileSync(file, elf);
    const r = requireIn(file);
    expect(r.status, r.stderr).to.equal(0);
    for (const f of ['startFuzzing', 'startFuzzingAsync', 'registerCoverageMap', 'registerNewCounters', 'registerModuleCounters', 'traceIntegerCompare']) {
      expect(r.stdout.split(/\s+/)).to.include(f);
    }
  });

  it('refuses a file that is already patched or not the expected shape', () => {
    const elf = Buffer.from(original());
    patchPrebuild(elf);
    expect(() => patchPrebuild(Buffer.from(elf))).to.throw(/unexpected prebuild/);
    expect(() => patchPrebuild(Buffer.from('not an ELF file at all, just some text bytes here'))).to.throw(/ELF64/);
  });
});
