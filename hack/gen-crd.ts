/**
 * `make manifests`: writes the VirtualMachineBMC CRD YAML from the TypeScript schema
 * (src/controller/api/schema.ts). `--check` only compares and exits 1 when the file is stale.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdYaml, CRD_PATH } from '../src/controller/api/render.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = resolve(root, CRD_PATH);
const yaml = renderCrdYaml();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    /* missing counts as stale */
  }
  if (current !== yaml) {
    process.stderr.write(`${CRD_PATH} is stale: run make manifests\n`);
    process.exit(1);
  }
} else {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, yaml);
  process.stdout.write(`wrote ${CRD_PATH}\n`);
}
