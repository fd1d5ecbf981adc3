import { expect } from 'chai';
import { once } from 'node:events';
import { spawnVirtbmc } from '../helpers/virtbmc-process.js';


/** virtbmc with `args`; resolves to its exit code and stderr (a refused flag exits before serving). */
async function virtbmc(args: string[]): Promise<{ code: number; err: string }> {
  const p = spawnVirtbmc(['--simulate', '--ipmi-port', '0', '--redfish-port', '0', ...args], { env: { ...process.env, BMC_PASSWORD: 'password' } });
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(p, 'exit')) as [number];
  return { code, err };
}

describe('virtbmc command line: session timeout ranges', function () {
  this.timeout(60000);

  it('refuses --ipmi-session-timeout 0 and --redfish-session-timeout 1 (SessionService PATCH allows 30..86400)', async () => {
    const ipmi = await virtbmc(['--ipmi-session-timeout', '0']);
    expect(ipmi.code).to.equal(2);
    expect(ipmi.err).to.match(/--ipmi-session-timeout must be a whole number from 1 to 86400, got 0/);
    const redfish = await virtbmc(['--redfish-session-timeout', '1']);
    expect(redfish.code).to.equal(2);
    expect(redfish.err).to.match(/--redfish-session-timeout must be a whole number from 30 to 86400, got 1/);
  });
});

describe('virtbmc command line: media egress rules', function () {
  this.timeout(60000);

  it('refuses a --media-allow entry that is neither a CIDR nor a host pattern, naming it', async () => {
    const flag = await virtbmc(['--media-allow', '127.0.0.0/8,10.0.0.0/99']);
    expect(flag.code).to.equal(2);
    expect(flag.err).to.match(/media egress rule "10\.0\.0\.0\/99" is neither a CIDR/);
  });
});
