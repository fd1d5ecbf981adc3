/**
 * Per-session packet confidentiality with OpenSSL contexts that live as long as the session.
 *
 * Creating an AES cipher object costs several microseconds in Node, more than encrypting a
 * whole IPMI message. A session therefore keeps one AES-128-CBC encryption and one decryption
 * context, set up once with its key, and feeds every packet through them. CBC carries the last
 * ciphertext block over as the chaining value for the next input; we track that value and fold
 * it out of the first block, so each packet is still encrypted and decrypted exactly as with its
 * own IV (the output is identical to codec aesEncrypt/aesDecrypt):
 *   encrypt: first input block P1 ⊕ IV ⊕ chain  →  AES(P1 ⊕ IV), as CBC with IV requires
 *   decrypt: first output block D(C1) ⊕ chain, ⊕ chain ⊕ IV  →  D(C1) ⊕ IV
 * Later blocks chain inside the packet as usual. IVs stay fresh CSPRNG output per packet.
 */
import { createCipheriv, createDecipheriv, randomFillSync, type Cipher, type Decipher } from 'node:crypto';
import { aesPayloadLengthOk, confidentialityPad, confidentialityUnpad, fail, type Decoded } from '../codec/index.js';

const BLOCK = 16;

export class AesCbcSession {
  private readonly enc: Cipher;
  private readonly dec: Decipher;
  /** CBC chaining value the encryption context holds (last ciphertext block it produced) */
  private readonly encChain = Buffer.alloc(BLOCK);
  /** Same for the decryption context (last ciphertext block it consumed) */
  private readonly decChain = Buffer.alloc(BLOCK);

  constructor(key: Buffer) {
    const k = key.subarray(0, BLOCK);
    this.enc = createCipheriv('aes-128-cbc', k, this.encChain);
    this.enc.setAutoPadding(false);
    this.dec = createDecipheriv('aes-128-cbc', k, this.decChain);
    this.dec.setAutoPadding(false);
  }

  /** IV | AES-CBC(key, IV, plaintext | confidentiality pad), as codec aesEncrypt. */
  encrypt(iv: Buffer, plaintext: Buffer): Buffer {
    const padded = confidentialityPad(plaintext);
    for (let i = 0; i < BLOCK; i++) padded[i] = padded[i]! ^ iv[i]! ^ this.encChain[i]!;
    const ct = this.enc.update(padded);
    // Without padding, a CBC context turns whole blocks into the same number of bytes at once.
    if (ct.length !== padded.length) throw new Error('AES context returned a partial block');
    ct.copy(this.encChain, 0, ct.length - BLOCK);
    const out = Buffer.allocUnsafe(BLOCK + ct.length);
    iv.copy(out, 0, 0, BLOCK);
    ct.copy(out, BLOCK);
    return out;
  }

  /** Decrypts an IV | ciphertext payload field and strips the pad, as codec aesDecrypt. */
  decrypt(payload: Buffer): Decoded<Buffer> {
    if (!aesPayloadLengthOk(payload)) return fail('bad-length', 'AES payload length');
    const ct = payload.subarray(BLOCK);
    const plain = this.dec.update(ct);
    if (plain.length !== ct.length) throw new Error('AES context returned a partial block');
    for (let i = 0; i < BLOCK; i++) plain[i] = plain[i]! ^ this.decChain[i]! ^ payload[i]!;
    ct.copy(this.decChain, 0, ct.length - BLOCK);
    return confidentialityUnpad(plain);
  }
}

/** Random IVs come from a pool refilled in bulk: one CSPRNG call per 256 packets instead of one each. */
const ivPool = Buffer.alloc(4096);
let ivOffset = ivPool.length;

/**
 * 16 fresh CSPRNG bytes (the pool never hands the same bytes out twice). The result is a view into
 * the pool, valid until the next 255 calls refill it: use it at once (encrypt copies it into the
 * packet) and never keep it.
 */
export function freshIv(): Buffer {
  if (ivOffset >= ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + BLOCK);
  ivOffset += BLOCK;
  return iv;
}
