/**
 * The InsertMedia egress policy (src/backend/egress.ts): which addresses an image URL may make the
 * agent reach, checked before the HEAD probe and so before a DataVolume exists. Every probe here
 * goes to a loopback image server or is refused before any packet leaves.
 */
import { expect } from 'chai';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { EgressPolicy, EgressRefused, EgressRuleError, embeddedIPv4, ipv6Groups, normaliseAddress, systemLocalAddresses, type Resolver } from '../../src/backend/egress.js';
import { probeImage } from '../../src/backend/probe.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { BackendError } from '../../src/backend/types.js';
import { startTestAgent } from '../helpers/agent.js';
import { LOOPBACK_MEDIA, startImageServer, type ImageServer } from '../helpers/images.js';

/** A resolver that answers from a table and records what it was asked (no DNS traffic) */
function tableResolver(table: Record<string, string[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const r = (async (host: string) => {
    asked.push(host);
    const addrs = table[host];
    if (!addrs) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addrs.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  }) as Resolver & { asked: string[] };
  r.asked = asked;
  return r;
}

async function refused(p: Promise<unknown>): Promise<EgressRefused> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(EgressRefused);
    return e as EgressRefused;
  }
  expect.fail('expected the policy to refuse');
}

describe('media egress policy', () => {
  it('refuses loopback, link-local (cloud metadata), unspecified, multicast and reserved addresses by default', async () => {
    const p = EgressPolicy.DEFAULT;
    for (const u of [
      'http://127.0.0.1/a.iso',
      'http://127.9.9.9/a.iso',
      'http://2130706433/a.iso', // the WHATWG parser makes this 127.0.0.1
      'http://0x7f.1/a.iso',
      'http://169.254.169.254/latest/meta-data',
      'http://0.0.0.0/a.iso',
      'http://224.0.0.1/a.iso',
      'http://255.255.255.255/a.iso',
      'http://[::1]/a.iso',
      'http://[::ffff:127.0.0.1]/a.iso',
      'http://[fe80::1]/a.iso',
      'http://[ff02::1]/a.iso',
    ]) {
      const e = await refused(p.check(new URL(u)));
      expect(e.kind, u).to.equal('policy');
    }
    expect(normaliseAddress('::ffff:7f00:1')).to.deep.equal({ address: '127.0.0.1', family: 'ipv4' });
  });

  it('permits public and private (in-cluster) addresses by default', async () => {
    for (const u of ['http://192.0.2.10/a.iso', 'http://10.96.0.15/a.iso', 'https://172.16.4.4/a.iso', 'http://192.168.1.1/a.iso', 'http://[fd12::4]/a.iso']) {
      expect((await EgressPolicy.DEFAULT.check(new URL(u))).address, u).to.be.a('string');
    }
  });

  it('checks every address a name resolves to: one refused address refuses the URL', async () => {
    const resolve = tableResolver({ 'mixed.example': ['192.0.2.7', '169.254.169.254'], 'ok.example': ['192.0.2.8'] });
    const p = new EgressPolicy({}, resolve);
    await refused(p.check(new URL('http://mixed.example/a.iso')));
    expect(await p.check(new URL('http://ok.example/a.iso'))).to.deep.equal({ address: '192.0.2.8', family: 4 });
    const none = await refused(p.check(new URL('http://nowhere.example/a.iso')));
    expect(none.kind).to.equal('unresolved');
  });

  it('allow opens a hole in the defaults (CIDR or host pattern); deny always wins', async () => {
    const resolve = tableResolver({ 'iso.lab.example': ['127.0.0.1'], 'other.example': ['127.0.0.1'], 'bad.example': ['192.0.2.9'] });
    const p = new EgressPolicy({ allow: ['*.lab.example', '10.0.0.0/8'], deny: ['10.1.0.0/16', 'bad.example'] }, resolve);
    expect((await p.check(new URL('http://iso.lab.example/a.iso'))).address).to.equal('127.0.0.1');
    await refused(p.check(new URL('http://other.example/a.iso')));
    expect((await p.check(new URL('http://10.2.3.4/a.iso'))).address).to.equal('10.2.3.4');
    await refused(p.check(new URL('http://10.1.2.3/a.iso')));
    await refused(p.check(new URL('http://bad.example/a.iso')));
    expect(resolve.asked).to.not.include('bad.example'); // a denied host is refused before any lookup
    const loop = new EgressPolicy({ allow: ['127.0.0.0/8'], deny: ['127.0.0.2'] });
    expect((await loop.check(new URL('http://127.0.0.1/a.iso'))).address).to.equal('127.0.0.1');
    await refused(loop.check(new URL('http://127.0.0.2/a.iso')));
  });

  describe('IPv6 forms that carry an IPv4 address', () => {
    it('decodes NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48), 6to4 and Teredo', () => {
      expect(embeddedIPv4('64:ff9b::7f00:1')).to.deep.equal({ form: 'NAT64', ipv4: '127.0.0.1' });
      expect(embeddedIPv4('64:ff9b::169.254.169.254')).to.deep.equal({ form: 'NAT64', ipv4: '169.254.169.254' });
      // RFC 6052 /48 layout: octets 1-2 in bits 48-63, octets 3-4 in bits 72-87 (bits 64-71 zero)
      expect(embeddedIPv4('64:ff9b:1:a9fe:a9:fe00::')).to.deep.equal({ form: 'NAT64', ipv4: '169.254.169.254' });
      expect(embeddedIPv4('64:ff9b:1:a9fe:ffa9:fe00::'), 'the reserved octet set: not that layout').to.equal(undefined);
      expect(embeddedIPv4('2002:7f00:1::')).to.deep.equal({ form: '6to4', ipv4: '127.0.0.1' });
      expect(embeddedIPv4('2002:a9fe:a9fe:1:2:3:4:5')).to.deep.equal({ form: '6to4', ipv4: '169.254.169.254' });
      // Teredo: the client's address is the last 32 bits inverted (127.0.0.1 -> 80ff:fffe)
      expect(embeddedIPv4('2001:0:4136:e378:8000:63bf:80ff:fffe')).to.deep.equal({ form: 'Teredo', ipv4: '127.0.0.1' });
      expect(embeddedIPv4('::ffff:0:7f00:1')).to.deep.equal({ form: 'SIIT', ipv4: '127.0.0.1' });
      expect(embeddedIPv4('::169.254.169.254')).to.deep.equal({ form: 'IPv4-compatible', ipv4: '169.254.169.254' });
      expect(embeddedIPv4('::1'), 'loopback itself, not an IPv4 form').to.equal(undefined);
      expect(embeddedIPv4('::')).to.equal(undefined);
      expect(embeddedIPv4('64:ff9b:0:0:1::7f00:1'), 'not the /96 well-known prefix').to.equal(undefined);
      expect(embeddedIPv4('2001:db8::1')).to.equal(undefined);
      expect(embeddedIPv4('127.0.0.1')).to.equal(undefined);
      expect(ipv6Groups('::ffff:1.2.3.4')).to.deep.equal([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
      expect(ipv6Groups('fe80::1%eth0')).to.deep.equal([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    });

    it('refuses NAT64, 6to4 and Teredo forms of refused IPv4 addresses, permits those of permitted ones', async () => {
      const p = new EgressPolicy({}, tableResolver({}), () => []);
      for (const u of [
        'http://[64:ff9b::127.0.0.1]/a.iso', // the URL parser writes it 64:ff9b::7f00:1
        'http://[64:ff9b::a9fe:a9fe]/latest/meta-data',
        'http://[64:ff9b:1:a9fe:a9:fe00::]/latest/meta-data',
        'http://[64:ff9b::e000:1]/a.iso', // multicast 224.0.0.1
        'http://[2002:7f00:1::1]/a.iso',
        'http://[2002:a9fe:a9fe::]/latest/meta-data',
        'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.iso',
        'http://[::ffff:0:7f00:1]/a.iso',
        'http://[::a9fe:a9fe]/latest/meta-data',
      ]) {
        const e = await refused(p.check(new URL(u)));
        expect(e.kind, u).to.equal('policy');
        expect(e.message, u).to.match(/(NAT64|6to4|Teredo|SIIT|IPv4-compatible) for (127\.0\.0\.1|169\.254\.169\.254|224\.0\.0\.1)/);
      }
      for (const u of ['http://[64:ff9b::c000:20a]/a.iso', 'http://[2002:c000:20a::1]/a.iso', 'http://[64:ff9b::a00:1]/a.iso']) {
        expect((await p.check(new URL(u))).family, u).to.equal(6);
      }
    });

    it('a deny of the IPv4 range covers its IPv6 forms; an allow of the IPv4 address or of the IPv6 form opens it', async () => {
      const denied = new EgressPolicy({ deny: ['10.0.0.0/8'] }, tableResolver({}), () => []);
      const e = await refused(denied.check(new URL('http://[64:ff9b::a00:1]/a.iso')));
      expect(e.message).to.match(/NAT64 for 10\.0\.0\.1\): 10\.0\.0\.1 is in a denied range/);
      await refused(denied.check(new URL('http://[2002:a00:1::]/a.iso')));
      const v4 = new EgressPolicy({ allow: ['127.0.0.0/8'] }, tableResolver({}), () => []);
      expect((await v4.check(new URL('http://[64:ff9b::7f00:1]/a.iso'))).address).to.equal('64:ff9b::7f00:1');
      const v6 = new EgressPolicy({ allow: ['64:ff9b::/96'] }, tableResolver({}), () => []);
      expect((await v6.check(new URL('http://[64:ff9b::7f00:1]/a.iso'))).address).to.equal('64:ff9b::7f00:1');
      await refused(v6.check(new URL('http://[2002:7f00:1::]/a.iso')));
    });

    it('a name resolving to a NAT64 form of the metadata address is refused', async () => {
      const p = new EgressPolicy({}, tableResolver({ 'dns64.example': ['192.0.2.1', '64:ff9b::a9fe:a9fe'] }), () => []);
      const e = await refused(p.check(new URL('http://dns64.example/a.iso')));
      expect(e.message).to.match(/NAT64 for 169\.254\.169\.254/);
    });
  });

  describe("the agent's own addresses (Pod IP)", () => {
    it('refuses every address of the agent, both families, in any spelling and carried in NAT64/6to4', async () => {
      let own = ['127.0.0.1', '10.244.1.7', 'fd00:10:244:1::7', 'fe80::a8bb:ccff:fedd:eeff%eth0'];
      const p = new EgressPolicy({}, tableResolver({ 'me.example': ['10.244.1.7'], 'peer.example': ['10.244.1.8'] }), () => own);
      for (const u of [
        'http://10.244.1.7:8000/redfish/v1',
        'http://[fd00:10:244:1::7]/a.iso',
        'http://[fd00:10:244:1:0:0:0:7]/a.iso',
        'http://[::ffff:10.244.1.7]/a.iso',
      ]) {
        const e = await refused(p.check(new URL(u)));
        expect(e.message, u).to.match(/agent's own addresses/);
      }
      const nat64 = await refused(p.check(new URL('http://[64:ff9b::af4:107]/a.iso'))); // 10.244.1.7
      expect(nat64.message).to.match(/NAT64 for 10\.244\.1\.7\): 10\.244\.1\.7 is one of the agent's own addresses/);
      await refused(p.check(new URL('http://me.example/a.iso')));
      // a neighbour Pod is another matter (private ranges stay permitted)
      expect((await p.check(new URL('http://peer.example/a.iso'))).address).to.equal('10.244.1.8');
      // read at every check: an address the Pod gains later is refused too
      own = [...own, '10.244.1.8'];
      await refused(p.check(new URL('http://peer.example/a.iso')));
      // and an explicit allow opens it like any default refusal
      const allowed = new EgressPolicy({ allow: ['10.244.1.7'] }, tableResolver({}), () => own);
      expect((await allowed.check(new URL('http://10.244.1.7/a.iso'))).address).to.equal('10.244.1.7');
    });

    it('by default reads them from the host interfaces', async () => {
      const mine = systemLocalAddresses();
      const expected = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address));
      expect(mine).to.deep.equal(expected);
      expect(mine).to.include('127.0.0.1');
      // any non-loopback IPv4 address of this machine is refused by the default policy
      for (const a of mine.filter((x) => isIPv4(x) && !x.startsWith('127.'))) {
        const e = await refused(EgressPolicy.DEFAULT.check(new URL(`http://${a}/a.iso`)));
        expect(e.message).to.match(/agent's own addresses/);
      }
    });
  });

  it('rejects a rule that is neither a CIDR nor a host pattern, naming it', () => {
    expect(() => new EgressPolicy({ allow: ['10.0.0.0/33'] })).to.throw(EgressRuleError, /10\.0\.0\.0\/33/);
    expect(() => new EgressPolicy({ deny: ['http://x/'] })).to.throw(EgressRuleError, /http:\/\/x\//);
  });

  describe('the probe', () => {
    let img: ImageServer;
    beforeEach(async () => {
      img = await startImageServer({ '/boot.iso': 4096 });
    });
    afterEach(async () => img.close());

    it('by default refuses a loopback image URL before sending anything; the message names no address or range', async () => {
      const m = new SimulatedMachine();
      let err: unknown;
      try {
        await m.insertMedia('Cd', { image: img.url('/boot.iso?X-Amz-Signature=s3cr3t') });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(BackendError);
      const e = err as BackendError;
      expect(e.code).to.equal('InvalidArgument');
      expect(e.message).to.equal(`image URL ${img.base}/boot.iso is not allowed by the agent's media egress policy`);
      expect(e.message).to.not.match(/loopback|127\.0\.0\.0|range|s3cr3t/);
      expect(img.requests).to.deep.equal([]);
      expect((await m.listMedia())[0]!.state).to.equal('empty');
    });

    it('an allowed loopback URL is probed', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      expect((await m.insertMedia('Cd', { image: img.url('/boot.iso') })).state).to.equal('inserted');
      expect(img.requests).to.deep.equal([{ method: 'HEAD', url: '/boot.iso' }]);
    });

    it('connects to the address the policy checked (a second DNS answer cannot move it)', async () => {
      // the name exists only in the policy's resolver: the HEAD reaching the loopback server proves
      // the request used the checked address rather than resolving again
      const resolve = tableResolver({ 'images.test': ['127.0.0.1'] });
      const egress = new EgressPolicy({ allow: ['127.0.0.0/8'] }, resolve);
      const url = new URL(img.url('/boot.iso').replace('127.0.0.1', 'images.test'));
      const r = await probeImage(url, { egress });
      expect(r).to.deep.equal({ status: 200, size: 4096 });
      expect(resolve.asked).to.deep.equal(['images.test']);
      expect(img.requests).to.deep.equal([{ method: 'HEAD', url: '/boot.iso' }]);
    });

    it('does not follow a redirect, and does not echo its Location', async () => {
      let err: unknown;
      try {
        await probeImage(new URL(img.url('/redirect/boot.iso')), { egress: LOOPBACK_MEDIA });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(BackendError);
      expect((err as Error).message).to.match(/redirects \(HTTP 30\d\); give the final URL$/);
      expect(img.requests).to.deep.equal([{ method: 'HEAD', url: '/redirect/boot.iso' }]);
    });
  });

  it('Redfish InsertMedia of a refused URL ends in 400 with a Base message and no internal detail', async () => {
    const img = await startImageServer({ '/boot.iso': 4096 });
    // the agent's default policy, as `virtbmc` runs without --media-allow
    const t = await startTestAgent({ sim: { powerOnDelayMs: 0, powerOffDelayMs: 0, mediaProbe: {} } });
    try {
      const auth = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64'), 'content-type': 'application/json' };
      const res = await fetch(`${t.redfishUrl}/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ Image: img.url('/boot.iso') }),
      });
      // InsertMedia runs as a task: follow the monitor to the operation's own answer
      let final = res;
      let body = (await res.json()) as Record<string, unknown>;
      for (let i = 0; i < 200 && final.status === 202; i++) {
        await new Promise((r) => setImmediate(r));
        final = await fetch(`${t.redfishUrl}${res.headers.get('location')!}`, { headers: auth });
        body = (await final.json()) as Record<string, unknown>;
      }
      expect(final.status).to.equal(400);
      const error = body.error as { code: string; message: string };
      expect(error.code).to.match(/^Base\.1\.\d+\.\d+\.ActionParameterValueError$/);
      expect(error.message).to.equal(`image URL ${img.base}/boot.iso is not allowed by the agent's media egress policy`);
      expect(JSON.stringify(body)).to.not.match(/loopback|127\.0\.0\.0\/8/);
      expect(img.requests).to.deep.equal([]);
    } finally {
      await t.close();
      await img.close();
    }
  });
});
