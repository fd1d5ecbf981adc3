/**
 * FRU inventory image (IPMI Platform Management FRU Information Storage Definition v1.0):
 * common header + chassis, board and product info areas, built from the machine's SystemInfo.
 * Pure: the same SystemInfo always gives the same bytes.
 */
import type { SystemInfo } from '../../backend/types.js';

const FORMAT_VERSION = 0x01;
const END_OF_FIELDS = 0xc1;
const LANGUAGE_ENGLISH = 0x00;
/** SMBIOS chassis type "Other", which is what hypervisors commonly report for a VM. */
export const CHASSIS_TYPE_OTHER = 0x01;
const MAX_FIELD = 63;

/** Zero checksum: the byte that makes the sum of `bytes` plus itself 0 modulo 256. */
export function zeroChecksum(bytes: Iterable<number>): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/**
 * One type/length-prefixed field, 8-bit ASCII + Latin-1 (type 11b). Characters outside Latin-1
 * become '?', text is cut at 63 bytes. A one-byte field would be C1h, which means "end of
 * fields", so one-character text gets a trailing space.
 */
export function encodeField(text: string): Buffer {
  let s = [...text].map((c) => (c.codePointAt(0)! <= 0xff ? c : '?')).join('');
  if (s.length === 1) s += ' ';
  const bytes = Buffer.from(s, 'latin1').subarray(0, MAX_FIELD);
  return Buffer.concat([Buffer.from([0xc0 | bytes.length]), bytes]);
}

/** An info area: version, length in 8-byte units, body, end marker, padding, checksum. */
function area(body: Buffer[]): Buffer {
  const content = Buffer.concat([Buffer.from([FORMAT_VERSION, 0]), ...body, Buffer.from([END_OF_FIELDS])]);
  const total = Math.ceil((content.length + 1) / 8) * 8;
  const out = Buffer.alloc(total);
  content.copy(out);
  out[1] = total / 8;
  out[total - 1] = zeroChecksum(out.subarray(0, total - 1));
  return out;
}

export interface FruText {
  manufacturer: string;
  productName: string;
  serialNumber: string;
  partNumber: string;
  version: string;
  assetTag: string;
  /** Extra product-area field */
  uuid: string;
}

export function fruTextFromInfo(info: SystemInfo): FruText {
  return {
    manufacturer: info.manufacturer,
    productName: info.model,
    serialNumber: info.serialNumber,
    partNumber: '',
    version: info.biosVersion ?? '',
    // The VM's identity in the cluster: namespace/name.
    assetTag: info.namespace ? `${info.namespace}/${info.name}` : info.name,
    uuid: info.uuid,
  };
}

export function buildFruImage(info: SystemInfo): Buffer {
  const t = fruTextFromInfo(info);
  const chassis = area([
    Buffer.from([CHASSIS_TYPE_OTHER]),
    encodeField(t.partNumber),
    encodeField(t.serialNumber),
  ]);
  const board = area([
    Buffer.from([LANGUAGE_ENGLISH, 0, 0, 0]), // manufacturing date/time: unspecified
    encodeField(t.manufacturer),
    encodeField(t.productName),
    encodeField(t.serialNumber),
    encodeField(t.partNumber),
    encodeField(''), // FRU file id
  ]);
  const product = area([
    Buffer.from([LANGUAGE_ENGLISH]),
    encodeField(t.manufacturer),
    encodeField(t.productName),
    encodeField(t.partNumber),
    encodeField(t.version),
    encodeField(t.serialNumber),
    encodeField(t.assetTag),
    encodeField(''), // FRU file id
    encodeField(t.uuid),
  ]);
  const header = Buffer.alloc(8);
  const chassisOffset = 1;
  const boardOffset = chassisOffset + chassis.length / 8;
  const productOffset = boardOffset + board.length / 8;
  header[0] = FORMAT_VERSION;
  header[2] = chassisOffset;
  header[3] = boardOffset;
  header[4] = productOffset;
  header[7] = zeroChecksum(header.subarray(0, 7));
  return Buffer.concat([header, chassis, board, product]);
}
