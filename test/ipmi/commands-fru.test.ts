import { expect } from 'chai';
import type { SystemInfo } from '../../src/backend/types.js';
import { buildFruImage, encodeField, zeroChecksum } from '../../src/ipmi/commands/fru.js';

const INFO: SystemInfo = {
  uuid: '6f1c2a9e-3b4d-5e6f-8a7b-9c0d1e2f3a4b',
  name: 'web-1',
  namespace: 'prod',
  serialNumber: 'SN-0042',
  manufacturer: 'KubeVirt',
  model: 'KubeVirt Simulated VM',
  cpuCount: 2,
  memoryMiB: 2048,
  nics: [],
  biosVersion: 'simulated-1.0',
};

const sum = (buf: Buffer) => buf.reduce((a, x) => (a + x) & 0xff, 0);

/** Independent reader of 8-bit ASCII type/length fields until C1h. */
function readFields(area: Buffer, start: number): string[] {
  const out: string[] = [];
  let i = start;
  while (area[i] !== 0xc1) {
    const tl = area[i]!;
    expect(tl >> 6, `type of field at ${i}`).to.equal(3);
    const len = tl & 0x3f;
    out.push(area.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
    expect(i).to.be.lessThan(area.length);
  }
  return out;
}

describe('IPMI FRU image', () => {
  const img = buildFruImage(INFO);

  it('has a common header with zero checksum and 8-byte aligned areas', () => {
    expect(img[0]).to.equal(0x01);
    expect(sum(img.subarray(0, 8))).to.equal(0);
    expect(img.length % 8).to.equal(0);
    const [chassis, board, product] = [img[2]!, img[3]!, img[4]!];
    expect(chassis).to.equal(1);
    expect(board).to.be.greaterThan(chassis);
    expect(product).to.be.greaterThan(board);
    expect(img[1]).to.equal(0); // no internal use area
    expect(img[5]).to.equal(0); // no multirecord area
  });

  it('every area sums to zero over its declared length', () => {
    for (const off of [img[2]!, img[3]!, img[4]!]) {
      const start = off * 8;
      const len = img[start + 1]! * 8;
      expect(img[start]).to.equal(0x01);
      expect(sum(img.subarray(start, start + len)), `area at ${start}`).to.equal(0);
    }
  });

  it('carries the machine identity in the chassis, board and product areas', () => {
    const area = (off: number) => img.subarray(off * 8, off * 8 + img[off * 8 + 1]! * 8);
    const chassis = area(img[2]!);
    expect(chassis[2]).to.equal(0x01); // chassis type Other
    expect(readFields(chassis, 3)).to.deep.equal(['', 'SN-0042']);
    const board = area(img[3]!);
    expect([...board.subarray(2, 6)]).to.deep.equal([0, 0, 0, 0]); // language, unspecified date
    expect(readFields(board, 6)).to.deep.equal(['KubeVirt', 'KubeVirt Simulated VM', 'SN-0042', '', '']);
    const product = area(img[4]!);
    expect(readFields(product, 3)).to.deep.equal([
      'KubeVirt',
      'KubeVirt Simulated VM',
      '',
      'simulated-1.0',
      'SN-0042',
      'prod/web-1',
      '',
      INFO.uuid,
    ]);
  });

  it('encodes fields safely: no lone C1h, 63-byte cap, Latin-1 only', () => {
    expect([...encodeField('')]).to.deep.equal([0xc0]);
    expect([...encodeField('A')]).to.deep.equal([0xc2, 0x41, 0x20]);
    expect(encodeField('x'.repeat(100)).length).to.equal(64);
    expect(encodeField('x'.repeat(100))[0]).to.equal(0xff);
    expect(encodeField('é✓').toString('latin1')).to.equal('\u00c2é?');
  });

  it('zeroChecksum matches the spec example arithmetic', () => {
    expect(zeroChecksum([0x01, 0x00, 0x01, 0x02, 0x05, 0x00, 0x00])).to.equal(0xf7);
  });
});
