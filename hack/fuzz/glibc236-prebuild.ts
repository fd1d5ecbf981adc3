/**
 * Makes the npm prebuild of the Jazzer.js addon (@jazzer.js/fuzzer 4.0.0,
 * prebuilds/fuzzer-linux-x64.node) load on glibc 2.36 / libstdc++ 12 (Debian 12), by editing its
 * ELF symbol-version tables in place. No code of the addon changes.
 *
 * Why it is enough (checked with `objdump -T` and `objdump -R` on the 4.0.0 prebuild): it asks for
 * only three symbols newer than Debian 12 has:
 *  - `__isoc23_strtol@GLIBC_2.38` and `__isoc23_strtoul@GLIBC_2.38`: glibc 2.38's C23 strtol and
 *    strtoul (they also accept a `0b` prefix, which libFuzzer's flag parsing never relies on).
 *    Each dynamic symbol's name is a NUL-terminated string, so pointing `st_name` 9 bytes later
 *    names plain `strtol` / `strtoul`, and its version becomes libc's `GLIBC_2.2.5` (which the
 *    addon already requires): the PLT slot then binds to the classic functions.
 *  - `std::ios_base_library_init()@GLIBCXX_3.4.32`: GCC 13's <iostream> only names it (an
 *    assembler `.globl`, no relocation uses it); the iostreams are set up by node itself, whose
 *    own code constructs std::ios_base::Init. Nothing binds to it, so only its version matters.
 * The version requirements GLIBC_2.38 and GLIBCXX_3.4.32 are then marked weak (VER_FLG_WEAK), so
 * the dynamic loader does not refuse the file for lacking them.
 *
 * Usage: tsx hack/fuzz/glibc236-prebuild.ts <in.node> <out.node>; exits 1 (naming what it found)
 * when the file does not have the expected shape, so a new release is never patched blindly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
const ISOC23 = '__isoc23_';
const RENAME = new Set(['__isoc23_strtol', '__isoc23_strtoul']);
const WEAKEN = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
const LIBC_BASE = 'GLIBC_2.2.5';

interface Section {
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

export function patchPrebuild(elf: Buffer): { renamed: string[]; weakened: string[] } {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a little-endian ELF64 file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      type: elf.readUInt32LE(o + 4),
      offset: Number(elf.readBigUInt64LE(o + 0x18)),
      size: Number(elf.readBigUInt64LE(o + 0x20)),
      link: elf.readUInt32LE(o + 0x28),
      entsize: Number(elf.readBigUInt64LE(o + 0x38)),
    });
  }
  const one = (type: number): Section => {
    const s = sections.filter((x) => x.type === type);
    if (s.length !== 1) throw new Error(`expected one section of type 0x${type.toString(16)}, found ${s.length}`);
    return s[0]!;
  };
  const dynsym = one(SHT_DYNSYM);
  const versym = one(SHT_GNU_VERSYM);
  const verneed = one(SHT_GNU_VERNEED);
  const dynstr = sections[dynsym.link]!;
  const str = (off: number): string => {
    const start = dynstr.offset + off;
    return elf.toString('latin1', start, elf.indexOf(0, start));
  };

  // version index by name (and the flags' offsets of the ones to weaken)
  const versionIndex = new Map<string, number>();
  const weakened: string[] = [];
  let vn = verneed.offset;
  for (;;) {
    const cnt = elf.readUInt16LE(vn + 2);
    const file = str(elf.readUInt32LE(vn + 4));
    let va = vn + elf.readUInt32LE(vn + 8);
    for (let i = 0; i < cnt; i++) {
      const name = str(elf.readUInt32LE(va + 8));
      if (file === 'libc.so.6' || !versionIndex.has(name)) versionIndex.set(name, elf.readUInt16LE(va + 6));
      if (WEAKEN.has(name)) {
        elf.writeUInt16LE(elf.readUInt16LE(va + 4) | VER_FLG_WEAK, va + 4);
        weakened.push(`${name} (${file})`);
      }
      const next = elf.readUInt32LE(va + 12);
      if (next === 0) break;
      va += next;
    }
    const next = elf.readUInt32LE(vn + 12);
    if (next === 0) break;
    vn += next;
  }
  const base = versionIndex.get(LIBC_BASE);
  if (base === undefined) throw new Error(`the file does not require ${LIBC_BASE} from libc.so.6`);

  const renamed: string[] = [];
  const count = dynsym.size / dynsym.entsize;
  for (let i = 0; i < count; i++) {
    const o = dynsym.offset + i * dynsym.entsize;
    const name = str(elf.readUInt32LE(o));
    if (!RENAME.has(name)) continue;
    elf.writeUInt32LE(elf.readUInt32LE(o) + ISOC23.length, o);
    elf.writeUInt16LE(base, versym.offset + i * 2);
    renamed.push(`${name} -> ${name.slice(ISOC23.length)}@${LIBC_BASE}`);
  }
  if (renamed.length !== RENAME.size || weakened.length !== WEAKEN.size) {
    throw new Error(`unexpected prebuild: renamed [${renamed.join(', ')}], weakened [${weakened.join(', ')}]`);
  }
  return { renamed, weakened };
}

const [input, output] = process.argv.slice(2);
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href && input && output) {
  try {
    const elf = readFileSync(input);
    const r = patchPrebuild(elf);
    writeFileSync(output, elf);
    console.error(`glibc236-prebuild: ${r.renamed.join(', ')}; weak: ${r.weakened.join(', ')}`);
  } catch (e) {
    console.error(`glibc236-prebuild: ${input}: ${(e as Error).message}`);
    process.exit(1);
  }
}
