import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import {
  aesDecrypt,
  aesEncrypt,
  checksum,
  decodeAsf,
  decodeLanRequest,
  decodeOpenSessionRequest,
  decodeRakp1,
  decodeRmcpHeader,
  decodeRmcpPlus,
  decodeV15,
  deriveKeys,
  encodeAsfPing,
  encodeAsfPong,
  encodeLanRequest,
  encodeOpenSessionRequest,
  encodeOpenSessionResponse,
  encodeRakp1,
  encodeRmcpPlus,
  encodeV15,
  isAsfPing,
  password16,
  rakp2AuthCode,
  rakp3AuthCode,
  rakp4Icv,
  responseFor,
  sessionIntegrityKey,
  verifyIntegrity,
  verifyV15AuthCode,
  type RakpInputs,
} from '../../src/ipmi/codec/index.js';

interface SuiteVector {
  username: string;
  password: string;
  console_session_id_le: string;
  bmc_session_id_le: string;
  rm: string;
  rc: string;
  guid: string;
  role: number;
  algorithms: { auth: number; integrity: number; conf: number };
  rakp2_auth_code: string;
  rakp3_auth_code: string;
  sik: string;
  k1: string;
  k2: string;
  aes_key: string;
  rakp4_icv: string;
  example_request: { ipmi_msg: string; iv: string; packet: string };
}

const vectors = JSON.parse(readFileSync('/work/shared/ipmi/test-vectors.json', 'utf8')) as {
  suite3: SuiteVector;
  suite17: SuiteVector;
  ipmi15_md5: { password: string; session_id: number; session_seq: number; ipmi_msg: string; authcode: string; packet: string };
};
const hex = (s: string) => Buffer.from(s, 'hex');

describe('ipmi codec', () => {
  describe('checksums and LAN messages', () => {
    it('computes the two checksums of a Get Channel Auth Caps request', () => {
      expect(checksum(hex('2018'))).to.equal(0xc8);
      expect(checksum(hex('8104388e04'))).to.equal(0xb1);
      expect(checksum(hex('8100388e04'))).to.equal(0xb5);
    });

    it('decodes and re-encodes a request byte-exactly', () => {
      const raw = hex('2018c88100388e04b5');
      const r = decodeLanRequest(raw);
      expect(r.ok).to.equal(true);
      if (!r.ok) return;
      expect(r.value).to.include({ netFn: 6, cmd: 0x38, rqSeq: 0, rqSA: 0x81, rsSA: 0x20 });
      expect(r.value.data.toString('hex')).to.equal('8e04');
      expect(encodeLanRequest(r.value).toString('hex')).to.equal(raw.toString('hex'));
    });

    it('rejects bad checksums and short messages', () => {
      expect(decodeLanRequest(hex('2018c98100388e04b5'))).to.include({ ok: false, code: 'bad-checksum' });
      expect(decodeLanRequest(hex('2018c88100388e04b6'))).to.include({ ok: false, code: 'bad-checksum' });
      expect(decodeLanRequest(hex('2018c881'))).to.include({ ok: false, code: 'truncated' });
    });

    it('builds the response with netFn+1, echoed seq and LUNs (matches the pyghmi capture)', () => {
      const r = decodeLanRequest(hex('2018c88100388e04b5'));
      if (!r.ok) throw new Error('decode');
      const rs = responseFor(r.value, 0, hex('0180040200000000'));
      expect(rs.subarray(0, 7).toString('hex')).to.equal('811c6320003800');
      expect(checksum(rs, 3)).to.equal(0); // chk2 makes the covered bytes sum to 0
    });
  });

  describe('ASF', () => {
    it('recognises a ping and builds the 28-byte pong', () => {
      const ping = encodeAsfPing(0xbe);
      expect(ping.toString('hex')).to.equal('0600ff06000011be80be0000');
      const h = decodeRmcpHeader(ping);
      expect(h.ok && h.value.msgClass).to.equal(6);
      const m = decodeAsf(ping.subarray(4));
      expect(m.ok && isAsfPing(m.value)).to.equal(true);
      const pong = encodeAsfPong(0xbe);
      expect(pong.toString('hex')).to.equal('0600ff06000011be40be0010000011be000000008100000000000000');
    });
  });

  for (const name of ['suite3', 'suite17'] as const) {
    const v = vectors[name];
    const hash = v.algorithms.auth === 1 ? 'sha1' : 'sha256';
    const inputs: RakpInputs = {
      hash,
      kuid: Buffer.from(v.password),
      consoleSessionId: hex(v.console_session_id_le).readUInt32LE(0),
      bmcSessionId: hex(v.bmc_session_id_le).readUInt32LE(0),
      rm: hex(v.rm),
      rc: hex(v.rc),
      guid: hex(v.guid),
      role: v.role,
      username: Buffer.from(v.username),
    };
    describe(`RMCP+ ${name} vectors`, () => {
      it('RAKP2 and RAKP3 auth codes', () => {
        expect(rakp2AuthCode(inputs).toString('hex')).to.equal(v.rakp2_auth_code);
        expect(rakp3AuthCode(inputs).toString('hex')).to.equal(v.rakp3_auth_code);
      });
      it('SIK, K1, K2 and RAKP4 ICV', () => {
        const sik = sessionIntegrityKey(inputs);
        expect(sik.toString('hex')).to.equal(v.sik);
        expect(sessionIntegrityKey(inputs, Buffer.alloc(20)).toString('hex')).to.equal(v.sik); // zero Kg = one-key
        const { k1, k2 } = deriveKeys(hash, sik);
        expect(k1.toString('hex')).to.equal(v.k1);
        expect(k2.toString('hex')).to.equal(v.k2);
        expect(k2.subarray(0, 16).toString('hex')).to.equal(v.aes_key);
        const len = hash === 'sha1' ? 12 : 16;
        expect(rakp4Icv(hash, sik, inputs.rm, inputs.bmcSessionId, inputs.guid, len).toString('hex')).to.equal(v.rakp4_icv);
      });
      it('verifies, decrypts and re-encrypts the example request byte-exactly', () => {
        const pkt = hex(v.example_request.packet);
        const p = decodeRmcpPlus(pkt.subarray(4));
        expect(p.ok).to.equal(true);
        if (!p.ok) return;
        expect(p.value).to.include({ payloadType: 0, encrypted: true, authenticated: true, sequence: 1 });
        expect(p.value.sessionId).to.equal(inputs.bmcSessionId);
        const k1 = hex(v.k1);
        expect(verifyIntegrity(p.value, v.algorithms.integrity, k1)).to.equal(true);
        const plain = aesDecrypt(hex(v.aes_key), p.value.payload);
        expect(plain.ok && plain.value.toString('hex')).to.equal(v.example_request.ipmi_msg);
        const again = encodeRmcpPlus(
          {
            payloadType: 0,
            encrypted: true,
            authenticated: true,
            sessionId: inputs.bmcSessionId,
            sequence: 1,
            payload: aesEncrypt(hex(v.aes_key), hex(v.example_request.iv), hex(v.example_request.ipmi_msg)),
          },
          { alg: v.algorithms.integrity, k1 },
        );
        expect(Buffer.concat([pkt.subarray(0, 4), again]).toString('hex')).to.equal(v.example_request.packet);
      });
      it('rejects a flipped bit anywhere in the signed packet, and a bad pad', () => {
        const pkt = hex(v.example_request.packet).subarray(4);
        for (let i = 0; i < pkt.length; i++) {
          const bad = Buffer.from(pkt);
          bad[i]! ^= 0x01;
          const p = decodeRmcpPlus(bad);
          if (p.ok) expect(verifyIntegrity(p.value, v.algorithms.integrity, hex(v.k1)), `byte ${i}`).to.equal(false);
        }
        const key = hex(v.aes_key);
        const enc = aesEncrypt(key, Buffer.alloc(16), Buffer.from('abc'));
        expect(aesDecrypt(key, enc).ok).to.equal(true);
        expect(aesDecrypt(key, enc.subarray(0, 20))).to.include({ ok: false });
      });
    });
  }

  describe('IPMI 1.5 MD5 vector', () => {
    const v = vectors.ipmi15_md5;
    it('encodes the packet and its auth code exactly, and verifies it', () => {
      const body = encodeV15(2, v.session_seq, v.session_id, hex(v.ipmi_msg), password16(v.password));
      const pkt = Buffer.concat([hex('0600ff07'), body]);
      expect(pkt.toString('hex')).to.equal(v.packet);
      // the same datagram in one piece, RMCP header as the lead
      expect(encodeV15(2, v.session_seq, v.session_id, hex(v.ipmi_msg), password16(v.password), hex('0600ff07')).toString('hex')).to.equal(v.packet);
      const d = decodeV15(hex(v.packet).subarray(4));
      expect(d.ok).to.equal(true);
      if (!d.ok) return;
      expect(d.value.authCode.toString('hex')).to.equal(v.authcode);
      expect(verifyV15AuthCode(d.value, password16(v.password))).to.equal(true);
      expect(verifyV15AuthCode(d.value, password16('Password'))).to.equal(false);
    });
    it('ignores a legacy pad byte and rejects a short packet', () => {
      const d = decodeV15(Buffer.concat([hex(v.packet).subarray(4), Buffer.from([0])]));
      expect(d.ok && d.value.message.toString('hex')).to.equal(v.ipmi_msg);
      expect(decodeV15(hex(v.packet).subarray(4, 20))).to.include({ ok: false, code: 'truncated' });
    });
  });

  describe('session setup messages', () => {
    it('round-trips Open Session Request and a wildcard proposal', () => {
      const rq = encodeOpenSessionRequest({ tag: 7, maxPrivilege: 0, consoleSessionId: 0xa0a2a3a4, auth: 3, integrity: 4, conf: 1 });
      const d = decodeOpenSessionRequest(rq);
      expect(d.ok && d.value).to.deep.include({ tag: 7, maxPrivilege: 0, consoleSessionId: 0xa0a2a3a4 });
      expect(d.ok && d.value.auth.alg).to.equal(3);
      const wild = Buffer.from(rq);
      wild[19] = 0; // integrity payload length 0 = wildcard
      const w = decodeOpenSessionRequest(wild);
      expect(w.ok && w.value.integrity.alg).to.equal(undefined);
      expect(decodeOpenSessionRequest(rq.subarray(0, 31))).to.include({ ok: false });
    });
    it('encodes the short error form of Open Session Response', () => {
      const r = encodeOpenSessionResponse({ tag: 1, status: 0x11, maxPrivilege: 4, consoleSessionId: 0x01020304, bmcSessionId: 5, auth: 0, integrity: 0, conf: 0 });
      expect(r.toString('hex')).to.equal('0111000004030201');
    });
    it('round-trips RAKP1 and rejects a long name', () => {
      const r = encodeRakp1({ tag: 2, bmcSessionId: 9, rm: Buffer.alloc(16, 7), role: 0x14, username: Buffer.from('admin') });
      const d = decodeRakp1(r);
      expect(d.ok && d.value.username.toString()).to.equal('admin');
      expect(d.ok && d.value.role).to.equal(0x14);
      const bad = Buffer.from(r);
      bad[27] = 17;
      expect(decodeRakp1(bad)).to.include({ ok: false });
    });
  });
});
