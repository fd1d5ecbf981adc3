import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mintSelfSigned, serialFrom } from '../../src/controller/tls-mint.js';

describe('minted certificate serials', () => {
  it('are positive and minimal DER for every first byte (00h 0xh was refused by OpenSSL: asn1 illegal padding)', () => {
    for (let first = 0; first < 256; first++) {
      for (const second of [0x00, 0x7f, 0x80, 0xff]) {
        const random = new Uint8Array(16).fill(0xa5);
        random[0] = first;
        random[1] = second;
        const s = serialFrom(random);
        expect(s.length).to.equal(16);
        // top bit clear (positive), not 00h (minimal whatever follows)
        expect(s[0]! & 0x80, `first ${first}`).to.equal(0);
        expect(s[0], `first ${first}`).to.not.equal(0);
        expect(Array.from(s.subarray(1))).to.deep.equal(Array.from(random.subarray(1)));
      }
    }
    // the input is not modified
    const r = new Uint8Array(16);
    serialFrom(r);
    expect(Array.from(r)).to.deep.equal(new Array(16).fill(0));
  });

  it('a minted certificate parses with a 16-byte serial', async () => {
    const now = Date.parse('2031-05-01T12:00:00Z');
    const m = await mintSelfSigned({ dnsNames: ['bmc.ns.svc'], notBefore: new Date(now), notAfter: new Date(now + 3_600_000) });
    const x = new X509Certificate(m.certPem);
    expect(x.serialNumber).to.match(/^[4-7][0-9A-F]{31}$/);
  });
});
