import { expect } from 'chai';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import {
  aesDecrypt,
  aesEncrypt,
  decodeRmcpPlus,
  encodeRmcpHeader,
  encodeRmcpPlus,
  RmcpClass,
  verifyIntegrity,
} from '../../src/ipmi/codec/index.js';
import { AesCbcSession, freshIv } from '../../src/ipmi/session/crypto.js';

describe('ipmi session crypto (long-lived AES contexts)', () => {
  it('encrypts every packet exactly as a fresh AES-CBC context with its own IV would', () => {
    const key = randomBytes(20);
    const s = new AesCbcSession(key);
    for (let i = 0; i < 300; i++) {
      const iv = randomBytes(16);
      const msg = randomBytes(i % 70);
      expect(s.encrypt(iv, msg).equals(aesEncrypt(key, iv, msg)), `packet ${i}`).to.equal(true);
    }
  });

  it('decrypts what the codec encrypted, interleaved with encryption and with rejected payloads', () => {
    const key = randomBytes(16);
    const s = new AesCbcSession(key);
    for (let i = 0; i < 300; i++) {
      const msg = randomBytes((i * 7) % 90);
      const d = s.decrypt(aesEncrypt(key, randomBytes(16), msg));
      expect(d.ok && d.value.equals(msg), `packet ${i}`).to.equal(true);
      // Neither our own encryption nor garbage may disturb the next decryption.
      s.encrypt(freshIv(), msg);
      expect(s.decrypt(randomBytes(20))).to.include({ ok: false, code: 'bad-length' });
      const garbage = s.decrypt(randomBytes(48));
      if (garbage.ok) expect(garbage.value.length).to.be.lessThan(32);
    }
  });

  it('reports a wrong pad as bad-padding, like the codec', () => {
    const key = randomBytes(16);
    const iv = randomBytes(16);
    // 'hello', then pad bytes that must read 01 02 ... 0a but have 63 in 9th place, then the pad
    // length 0x0a (IPMI v2.0 13.29): encrypted as is, so the pad is wrong whatever the key
    // (flipping a ciphertext bit instead left a valid pad about once in 256 runs)
    const block = Buffer.from([...Buffer.from('hello'), 1, 2, 3, 4, 5, 6, 7, 8, 0x63, 10, 10]);
    const c = createCipheriv('aes-128-cbc', key, iv);
    c.setAutoPadding(false);
    const bad = Buffer.concat([iv, c.update(block), c.final()]);
    expect(new AesCbcSession(key).decrypt(bad)).to.deep.equal(aesDecrypt(key, bad));
    expect(aesDecrypt(key, bad)).to.include({ ok: false, code: 'bad-padding' });
    // the same block with the right pad decrypts, so it is the pad that is refused
    const goodBlock = Buffer.from(block);
    goodBlock[13] = 9;
    const c2 = createCipheriv('aes-128-cbc', key, iv);
    c2.setAutoPadding(false);
    const good = Buffer.concat([iv, c2.update(goodBlock), c2.final()]);
    expect(good.equals(aesEncrypt(key, iv, Buffer.from('hello')))).to.equal(true);
    expect(aesDecrypt(key, good)).to.deep.equal({ ok: true, value: Buffer.from('hello') });
  });

  it('hands out IVs that never repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(freshIv().toString('hex'));
    expect(seen.size).to.equal(1000);
  });
});

describe('ipmi codec: encodeRmcpPlus with a lead', () => {
  it('puts the RMCP header in front, outside the integrity code', () => {
    const k1 = randomBytes(20);
    for (let len = 0; len < 9; len++) {
      const p = { payloadType: 0, encrypted: false, authenticated: true, sessionId: 0x11223344, sequence: len + 1, payload: randomBytes(len) };
      const plain = encodeRmcpPlus(p, { alg: 1, k1 });
      const led = encodeRmcpPlus(p, { alg: 1, k1 }, encodeRmcpHeader(RmcpClass.IPMI));
      expect(led.subarray(4).equals(plain)).to.equal(true);
      expect(plain.length % 4).to.equal(0);
      const decoded = decodeRmcpPlus(led.subarray(4));
      expect(decoded.ok && verifyIntegrity(decoded.value, 1, k1)).to.equal(true);
      // authCode = first 12 bytes of HMAC-SHA1(K1, everything from the auth type byte to next header)
      const code = createHmac('sha1', k1).update(plain.subarray(0, plain.length - 12)).digest().subarray(0, 12);
      expect(plain.subarray(plain.length - 12).equals(code)).to.equal(true);
    }
  });
});

describe('ipmi codec: per-packet integrity (node:crypto HMAC)', () => {
  it('signs with HMAC-SHA1-96 / HMAC-SHA256-128 of the signed part, verifies it, refuses a flipped bit or another key', () => {
    for (const alg of [1, 4]) {
      const hash = alg === 1 ? 'sha1' : 'sha256';
      const codeLen = alg === 1 ? 12 : 16;
      for (let len = 0; len <= 80; len += 7) {
        const k1 = randomBytes(alg === 1 ? 20 : 32);
        const p = { payloadType: 0, encrypted: true, authenticated: true, sessionId: 7, sequence: 9, payload: randomBytes(len) };
        const a = encodeRmcpPlus(p, { alg, k1 });
        const want = createHmac(hash, k1).update(a.subarray(0, a.length - codeLen)).digest().subarray(0, codeLen);
        expect(a.subarray(a.length - codeLen).equals(want), `${hash} payload ${len}`).to.equal(true);
        const d = decodeRmcpPlus(a);
        expect(d.ok && verifyIntegrity(d.value, alg, k1)).to.equal(true);
        expect(d.ok && verifyIntegrity(d.value, alg, randomBytes(k1.length))).to.equal(false);
        const tampered = Buffer.from(a);
        tampered[len > 0 ? 12 + (len >> 1) : 6]! ^= 1; // a payload byte, or the sequence number
        const t = decodeRmcpPlus(tampered);
        expect(t.ok && verifyIntegrity(t.value, alg, k1)).to.equal(false);
      }
    }
  });
});
