/**
 * Virtual media insert in KubeVirt mode (a measurement, not a test): the agent (Redfish) over the
 * KubeVirt backend against the apiserver emulator, a running VM with an empty CD-ROM drive, a 50 MB
 * image served from a loopback HTTP server. Each round: POST InsertMedia → 202 → poll the task
 * monitor until the task ends (Completed) → EjectMedia, then wait until the DataVolume is gone.
 *
 * What the time includes: the Redfish request and task, the agent's HEAD of the image (loopback),
 * the DataVolume create, the emulated CDI import, the template JSON patch, the emulated declarative
 * hotplug into the VMI and its volumeStatus turning Ready, and the watch events that carry all of it
 * back to the agent, plus the client's poll interval (--poll ms, default 20). The emulator's CDI does
 * not download anything: its import takes --import-ms; by default that is the time this machine
 * takes to GET the whole 50 MB image over loopback (measured first and printed), so the figure
 * stands for "CDI pulls the image at loopback speed" without disk writes or format conversion.
 * Run with --import-ms 1 to see the agent + emulator overhead alone.
 *   npx tsx bench/media-insert.ts [--rounds 10] [--size-mb 50] [--import-ms N] [--poll 20]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKubeVirtMachine } from '../src/backend/kubevirt/index.js';
import { startAgent } from '../src/agent/agent.js';
import { nullLogger } from '../src/common/logger.js';
import { startApiServer } from '../test/emulator/index.js';

function arg(name: string, def: number | undefined): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
const ROUNDS = arg('rounds', 10)!;
const SIZE = Math.round(arg('size-mb', 50)! * 1e6);
const POLL_MS = arg('poll', 20)!;

// a 50 MB image from loopback: HEAD answers the size, GET streams the bytes
const chunk = Buffer.alloc(1 << 20, 0x41);
const images = http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': String(SIZE), 'content-type': 'application/octet-stream' });
  if (req.method === 'HEAD') return res.end();
  let left = SIZE;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
});
await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
const imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/install.iso`;

async function download(): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(imageUrl);
  let n = 0;
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) n += c.length;
  if (n !== SIZE) throw new Error(`downloaded ${n} of ${SIZE} bytes`);
  return performance.now() - t0;
}
await download(); // warm-up
const dl: number[] = [];
for (let i = 0; i < 3; i++) dl.push(await download());
dl.sort((a, b) => a - b);
const IMPORT_MS = Math.max(1, Math.round(arg('import-ms', undefined) ?? dl[1]!));

const emu = await startApiServer({ vmiPhaseDelayMs: 5, vmiStopDelayMs: 5, dataVolumeImportMs: IMPORT_MS });
emu.create({
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachine',
  metadata: { name: 'vm1', namespace: 'default' },
  spec: {
    runStrategy: 'Always',
    template: {
      spec: {
        domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }, { name: 'cdrom', cdrom: { bus: 'sata' } }] } },
        volumes: [{ name: 'root', containerDisk: { image: 'quay.io/containerdisks/fedora:40' } }],
      },
    },
  },
});
const logger = nullLogger();
const machine = await createKubeVirtMachine({ namespace: 'default', name: 'vm1', logger, kubeConfig: emu.makeKubeConfig() });
const agent = await startAgent({
  machine,
  users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
  logger,
  address: '127.0.0.1',
  ipmi: false,
  redfish: { port: 0 },
});
const base = `http://127.0.0.1:${agent.redfish!.port}`;
const auth = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') };
const until = async (fn: () => boolean | Promise<boolean>, what: string): Promise<void> => {
  const deadline = Date.now() + 60_000;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
const vmiRunning = () => (emu.get('kubevirt.io/v1', 'VirtualMachineInstance', 'default', 'vm1')?.status as { phase?: string } | undefined)?.phase === 'Running';
await until(vmiRunning, 'VMI Running');

const times: number[] = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    const res = await fetch(`${base}/redfish/v1/Systems/1/VirtualMedia/cdrom/Actions/VirtualMedia.InsertMedia`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ Image: imageUrl, TransferProtocolType: 'HTTP' }),
    });
    const task = (await res.json()) as { '@odata.id'?: string };
    if (res.status !== 202) throw new Error(`InsertMedia answered ${res.status}: ${JSON.stringify(task)}`);
    const monitor = res.headers.get('location')!;
    for (;;) {
      const r = await fetch(base + monitor, { headers: auth });
      await r.arrayBuffer();
      if (r.status !== 202) break;
      await new Promise((x) => setTimeout(x, POLL_MS));
    }
    times.push(performance.now() - t0);
    const t = (await (await fetch(base + task['@odata.id']!, { headers: auth })).json()) as { TaskState?: string; Messages?: unknown };
    if (t.TaskState !== 'Completed') throw new Error(`task ended ${t.TaskState}: ${JSON.stringify(t.Messages)}`);
    const ej = await fetch(`${base}/redfish/v1/Systems/1/VirtualMedia/cdrom/Actions/VirtualMedia.EjectMedia`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    await ej.arrayBuffer();
    await until(() => !emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', 'vm1-vmedia-cdrom'), 'DataVolume deleted');
    const vs = () => ((emu.get('kubevirt.io/v1', 'VirtualMachineInstance', 'default', 'vm1')?.status as { volumeStatus?: { name: string }[] }).volumeStatus ?? []);
    await until(() => !vs().some((s) => s.name === 'cdrom'), 'volume unplugged');
  }
} finally {
  await agent.close();
  await emu.close();
  await new Promise<void>((r) => images.close(() => r()));
}

times.sort((a, b) => a - b);
const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;
console.log(`image: ${(SIZE / 1e6).toFixed(0)} MB from loopback; GET of the whole image: median ${dl[1]!.toFixed(0)} ms (${((SIZE / 1e6) / (dl[1]! / 1000)).toFixed(0)} MB/s)`);
console.log(`emulated CDI import: ${IMPORT_MS} ms${arg('import-ms', undefined) === undefined ? ' (= that GET time)' : ' (--import-ms)'}; client poll interval ${POLL_MS} ms`);
console.log(
  `InsertMedia → task Completed (KubeVirt mode, running VM, declarative hotplug), ${ROUNDS} rounds: ` +
    `median ${pct(50).toFixed(0)} ms, p90 ${pct(90).toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms; ` +
    `overhead over the import: median ${(pct(50) - IMPORT_MS).toFixed(0)} ms`,
);
