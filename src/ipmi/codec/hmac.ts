/**
 * HMAC-SHA1 / HMAC-SHA256 (RFC 2104, FIPS 180-4) with the key schedule done once per key.
 *
 * Why not node:crypto for this: every createHmac() builds a stream object, imports the key and
 * hashes both key pads again, which costs more than signing a whole IPMI packet. RMCP+ signs every
 * packet of a session with the same K1, so we hash the padded keys once (prepareHmacKey) and per
 * packet only run the compression function over the message and the outer digest (two blocks for a
 * typical IPMI packet). The code has no branches or memory accesses that depend on key or data,
 * and test/ipmi/session-crypto.test.ts checks it against node:crypto on random keys and lengths.
 * Used for per-packet integrity only; RAKP and key derivation stay on node:crypto.
 */
import { createHash } from 'node:crypto';
import type { HashName } from './suites.js';

const BLOCK = 64;

export interface HmacKey {
  readonly hash: HashName;
  /** Hash state after the (key ⊕ ipad) block */
  readonly inner: Int32Array;
  /** Hash state after the (key ⊕ opad) block */
  readonly outer: Int32Array;
}

const SHA1_IV = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
const SHA256_IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
// prettier-ignore
const K256 = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const K3 = 0x8f1bbcdc | 0;
const K4 = 0xca62c1d6 | 0;
const W = new Int32Array(80);

function loadBlock(b: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    W[i] = (b[j]! << 24) | (b[j + 1]! << 16) | (b[j + 2]! << 8) | b[j + 3]!;
  }
}

function sha1Block(st: Int32Array, b: Uint8Array, off: number): void {
  loadBlock(b, off);
  for (let i = 16; i < 80; i++) {
    const x = W[i - 3]! ^ W[i - 8]! ^ W[i - 14]! ^ W[i - 16]!;
    W[i] = (x << 1) | (x >>> 31);
  }
  let a = st[0]!;
  let b1 = st[1]!;
  let c = st[2]!;
  let d = st[3]!;
  let e = st[4]!;
  let t: number;
  for (let i = 0; i < 20; i++) {
    t = (((a << 5) | (a >>> 27)) + ((b1 & c) | (~b1 & d)) + e + 0x5a827999 + W[i]!) | 0;
    e = d;
    d = c;
    c = (b1 << 30) | (b1 >>> 2);
    b1 = a;
    a = t;
  }
  for (let i = 20; i < 40; i++) {
    t = (((a << 5) | (a >>> 27)) + (b1 ^ c ^ d) + e + 0x6ed9eba1 + W[i]!) | 0;
    e = d;
    d = c;
    c = (b1 << 30) | (b1 >>> 2);
    b1 = a;
    a = t;
  }
  for (let i = 40; i < 60; i++) {
    t = (((a << 5) | (a >>> 27)) + ((b1 & c) | (b1 & d) | (c & d)) + e + K3 + W[i]!) | 0;
    e = d;
    d = c;
    c = (b1 << 30) | (b1 >>> 2);
    b1 = a;
    a = t;
  }
  for (let i = 60; i < 80; i++) {
    t = (((a << 5) | (a >>> 27)) + (b1 ^ c ^ d) + e + K4 + W[i]!) | 0;
    e = d;
    d = c;
    c = (b1 << 30) | (b1 >>> 2);
    b1 = a;
    a = t;
  }
  st[0] = (st[0]! + a) | 0;
  st[1] = (st[1]! + b1) | 0;
  st[2] = (st[2]! + c) | 0;
  st[3] = (st[3]! + d) | 0;
  st[4] = (st[4]! + e) | 0;
}

function sha256Block(st: Int32Array, b: Uint8Array, off: number): void {
  loadBlock(b, off);
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = st[0]!;
  let b1 = st[1]!;
  let c = st[2]!;
  let d = st[3]!;
  let e = st[4]!;
  let f = st[5]!;
  let g = st[6]!;
  let h = st[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b1) ^ (a & c) ^ (b1 & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b1;
    b1 = a;
    a = (t1 + t2) | 0;
  }
  st[0] = (st[0]! + a) | 0;
  st[1] = (st[1]! + b1) | 0;
  st[2] = (st[2]! + c) | 0;
  st[3] = (st[3]! + d) | 0;
  st[4] = (st[4]! + e) | 0;
  st[5] = (st[5]! + f) | 0;
  st[6] = (st[6]! + g) | 0;
  st[7] = (st[7]! + h) | 0;
}

const tail = new Uint8Array(2 * BLOCK);

/** Hashes `data` on top of a state that has already absorbed `before` bytes (one key block). */
function absorb(hash: HashName, st: Int32Array, data: Uint8Array, before: number): void {
  const block = hash === 'sha1' ? sha1Block : sha256Block;
  const n = data.length;
  let off = 0;
  for (; n - off >= BLOCK; off += BLOCK) block(st, data, off);
  const rem = n - off;
  const blocks = rem + 9 > BLOCK ? 2 : 1;
  tail.fill(0);
  tail.set(data.subarray(off), 0);
  tail[rem] = 0x80;
  const bits = (before + n) * 8;
  const end = blocks * BLOCK;
  const hi = Math.floor(bits / 0x100000000);
  const lo = bits >>> 0;
  for (let i = 0; i < 4; i++) {
    tail[end - 8 + i] = (hi >>> (24 - 8 * i)) & 0xff;
    tail[end - 4 + i] = (lo >>> (24 - 8 * i)) & 0xff;
  }
  block(st, tail, 0);
  if (blocks === 2) block(st, tail, BLOCK);
}

function stateBytes(st: Int32Array, out: Uint8Array): void {
  for (let i = 0; i < st.length; i++) {
    const v = st[i]!;
    out[i * 4] = v >>> 24;
    out[i * 4 + 1] = (v >>> 16) & 0xff;
    out[i * 4 + 2] = (v >>> 8) & 0xff;
    out[i * 4 + 3] = v & 0xff;
  }
}

/** The pad states for one key; do this once per key. */
export function prepareHmacKey(hash: HashName, key: Buffer): HmacKey {
  const k = new Uint8Array(BLOCK);
  k.set(key.length > BLOCK ? createHash(hash).update(key).digest() : key);
  const ipad = new Uint8Array(BLOCK);
  const opad = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    ipad[i] = k[i]! ^ 0x36;
    opad[i] = k[i]! ^ 0x5c;
  }
  const iv = hash === 'sha1' ? SHA1_IV : SHA256_IV;
  const inner = Int32Array.from(iv);
  const outer = Int32Array.from(iv);
  const block = hash === 'sha1' ? sha1Block : sha256Block;
  block(inner, ipad, 0);
  block(outer, opad, 0);
  return { hash, inner, outer };
}

const st = new Int32Array(8);

/** HMAC(key, data), the full digest (20 bytes for SHA-1, 32 for SHA-256). */
export function hmacWithKey(key: HmacKey, data: Uint8Array): Buffer {
  const words = key.inner.length;
  const s = st.subarray(0, words);
  const digest = Buffer.allocUnsafe(words * 4); // fully written by stateBytes
  s.set(key.inner);
  absorb(key.hash, s, data, BLOCK);
  stateBytes(s, digest);
  s.set(key.outer);
  absorb(key.hash, s, digest, BLOCK);
  stateBytes(s, digest);
  return digest;
}
