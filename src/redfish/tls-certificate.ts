/**
 * The HTTPS certificate of the Redfish service, for CertificateService: what it is (parsed with
 * node's X509Certificate) and, when it came from files the agent may write, replacing it
 * (ReplaceCertificate). A replacement is checked (a PEM certificate, a PEM private key that
 * matches it), written next to the old files and renamed over them (so a crash never leaves half a
 * key), then handed to the listeners (the server swaps its secure context: new connections get the
 * new certificate, open ones keep theirs).
 *
 * In a cluster the controller mounts the certificate from a Secret: Kubernetes mounts Secret
 * volumes read-only, so the certificate is read-only there (rotate it in the Secret instead).
 * A rotated Secret reaches the agent without a restart: the kubelet swaps the mounted files (one
 * symlink, both files at once) and watch() re-reads them now and then (reload()), installing a new
 * pair once it parses and the key matches; a half-updated or broken pair is ignored until fixed.
 *
 * GenerateCSR leaves a pending key here (withNewPendingKey): the private key of the last
 * certificate signing request, one at a time (a newer request replaces it). A later replace() with
 * a certificate and no key installs the certificate with that key when they match, writing the pair
 * as any replacement is written. The pending key is kept where the replaced pair would go, so that
 * a restart between the request and the signed certificate (a CA can take days; a pod is
 * rescheduled at any time) loses nothing: next to the key file (`<keyFile>.csr-pending`, mode 0600)
 * or in the certificate Secret (CertificateStore.savePendingKey); restorePendingKey() reads it back
 * at start. Never logged or shown; removed once its certificate is in.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export class CertificateError extends Error {
  constructor(
    message: string,
    readonly parameter: 'CertificateString' | 'CertificateType' | 'CertificateUri',
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

/** The first PEM CERTIFICATE block of a PEM string (a chain may follow). */
function firstCertificate(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new CertificateError(`not a PEM certificate: ${(e as Error).message}`, 'CertificateString');
  }
}

/** Whether the agent may write both files (and create the temporary files next to them). */
function writable(files: TlsFiles): boolean {
  try {
    for (const f of [files.certFile, files.keyFile]) {
      accessSync(f, constants.W_OK);
      accessSync(dirname(f), constants.W_OK);
    }
    return true;
  } catch {
    return false;
  }
}

/** Keeps a replaced certificate and key somewhere the agent's next start reads them from. */
export interface CertificateStore {
  save(certPem: string, keyPem: string): Promise<void>;
  /** Keep the pending GenerateCSR key (PKCS#8 PEM) for the next start; undefined removes it. */
  savePendingKey?(keyPem: string | undefined): Promise<void>;
  /** The pending GenerateCSR key kept by savePendingKey, if any. */
  loadPendingKey?(): Promise<string | undefined>;
}

/** The temporary file a file is written to before it is renamed over the file. */
const tmpOf = (file: string): string => `${file}.new-${process.pid}`;

/** Remove files that may not be there. */
function unlinkIfThere(...files: string[]): void {
  for (const f of files) {
    try {
      unlinkSync(f);
    } catch {
      /* not there */
    }
  }
}

/** Where a pending GenerateCSR key is kept beside the key file (files mode). */
export const pendingKeyFile = (keyFile: string): string => `${keyFile}.csr-pending`;

export class TlsCertificate {
  private certPem: string;
  private keyPem: string;
  private x509: X509Certificate;
  private readonly listeners = new Set<(cert: string, key: string) => void>();
  /**
   * The files' content when last read (or written): reload() acts on a change of the files, not on
   * a difference from what is served, so a pair just saved to the store is not undone by the old
   * files before the kubelet has refreshed them.
   */
  private filesSeen: string;
  /** The private key of the last GenerateCSR, until a certificate for it is installed (kept: persistPendingKey). */
  private pendingKey: KeyObject | undefined;
  /** GenerateCSR requests, one after the other: the last one asked for is the pending one. */
  private csrQueue: Promise<unknown> = Promise.resolve();

  constructor(
    cert: string | Buffer,
    key: string | Buffer,
    private readonly files?: TlsFiles,
    /**
     * Where a replacement is kept instead of the files (a Kubernetes Secret the mounted files come
     * from: src/kube/tls-secret.ts); with it the certificate is replaceable even on a read-only mount.
     */
    private readonly store?: CertificateStore,
    /**
     * Never replaceable over Redfish, for this reason (shared mode: one certificate serves every
     * system of a shard, so no tenant's Administrator may swap it; the controller rotates it).
     */
    private readonly lockedReason?: string,
  ) {
    this.certPem = cert.toString();
    this.keyPem = key.toString();
    this.filesSeen = `${this.certPem}\0${this.keyPem}`;
    this.x509 = firstCertificate(this.certPem);
  }

  get certificate(): X509Certificate {
    return this.x509;
  }

  /** The certificate (chain) PEM the server presents; never the key. */
  get pem(): string {
    return this.certPem;
  }

  /** Whether ReplaceCertificate can work: a store to keep it, or files the agent can write. */
  get replaceable(): boolean {
    if (this.lockedReason !== undefined) return false;
    return this.store !== undefined || (this.files !== undefined && writable(this.files));
  }

  /** Why not, for the error message. */
  get readOnlyReason(): string {
    if (this.lockedReason !== undefined) return this.lockedReason;
    if (!this.files) return 'the HTTPS certificate was given in memory, not from files';
    return `the certificate files (${this.files.certFile}, ${this.files.keyFile}) are not writable (a Kubernetes Secret mount is read-only: rotate the certificate in the Secret)`;
  }

  onChange(fn: (cert: string, key: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Make a new pending key: `make` generates a key pair and its signing request; it runs after any
   * earlier request has finished, and its key then replaces the pending one. Returns what `make`
   * gave besides the key (the request).
   */
  async withNewPendingKey<T>(make: () => Promise<{ privateKey: KeyObject; request: T }>): Promise<T> {
    const run = this.csrQueue.then(async () => {
      const made = await make();
      // kept before the request is handed out: a request whose key a restart would lose is not
      // given (the error reaches the client), and the queue keeps the writes in request order
      await this.persistPendingKey(made.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      this.pendingKey = made.privateKey;
      return made;
    });
    this.csrQueue = run.catch(() => undefined);
    const { request } = await run;
    return request;
  }

  /**
   * Read back the pending key a GenerateCSR before a restart left (see the file comment); a kept
   * key that does not parse is ignored (the next GenerateCSR replaces it).
   */
  async restorePendingKey(): Promise<void> {
    if (!this.replaceable) return;
    let pem: string | undefined;
    try {
      if (this.store) pem = await this.store.loadPendingKey?.();
      else if (this.files && existsSync(pendingKeyFile(this.files.keyFile))) pem = readFileSync(pendingKeyFile(this.files.keyFile), 'utf8');
    } catch {
      return;
    }
    if (pem === undefined || this.pendingKey !== undefined) return;
    try {
      this.pendingKey = createPrivateKey(pem);
    } catch {
      // not a key: as if none were kept
    }
  }

  /** Keep (or with undefined, remove) the pending key where restorePendingKey finds it. */
  private async persistPendingKey(keyPem: string | undefined): Promise<void> {
    if (this.store) {
      await this.store.savePendingKey?.(keyPem);
      return;
    }
    if (!this.files) return;
    const target = pendingKeyFile(this.files.keyFile);
    if (keyPem === undefined) {
      if (existsSync(target)) unlinkSync(target);
      return;
    }
    try {
      writeFileSync(tmpOf(target), keyPem, { mode: 0o600 });
      renameSync(tmpOf(target), target);
    } catch (e) {
      // no copy of a private key is left half-written beside the files
      unlinkIfThere(tmpOf(target));
      throw e;
    }
  }

  /** Whether a GenerateCSR key waits for its certificate. */
  get hasPendingKey(): boolean {
    return this.pendingKey !== undefined;
  }

  /**
   * Check and install a new certificate and key; without a key, the pending GenerateCSR key when
   * the certificate belongs to it. CertificateError when the input is not a certificate, not a
   * key, they do not match, or there is no key for the certificate; Error when the files cannot
   * be written.
   */
  async replace(certPem: string, keyPem?: string): Promise<X509Certificate> {
    if (!this.replaceable) throw new Error(this.readOnlyReason);
    const x509 = firstCertificate(certPem);
    const pending = this.pendingKey;
    if (keyPem === undefined) {
      if (!pending) {
        throw new CertificateError(
          'the CertificateString holds no PEM private key and no GenerateCSR key is pending (give the certificate followed by its private key, or a certificate signed for the last GenerateCSR request)',
          'CertificateString',
        );
      }
      if (!x509.checkPrivateKey(pending)) {
        throw new CertificateError(
          "the certificate's public key is not the key of the last GenerateCSR request (a newer request replaces an older one's key), and the CertificateString holds no private key",
          'CertificateString',
        );
      }
      keyPem = pending.export({ type: 'pkcs8', format: 'pem' }) as string;
    } else {
      let key;
      try {
        key = createPrivateKey(keyPem);
      } catch {
        throw new CertificateError('the CertificateString holds no PEM private key (give the certificate followed by its private key)', 'CertificateString');
      }
      if (!x509.checkPrivateKey(key)) throw new CertificateError('the private key does not belong to the certificate', 'CertificateString');
    }
    const installed = await this.write(certPem, keyPem, x509);
    // the pending key is used up once its certificate is in (a request made meanwhile keeps its own)
    if (pending !== undefined && this.pendingKey === pending && x509.checkPrivateKey(pending)) {
      this.pendingKey = undefined;
      try {
        await this.persistPendingKey(undefined);
      } catch {
        // the certificate is in; a kept copy of its key left behind only waits for a certificate
        // made for it, and the next GenerateCSR replaces it
      }
    }
    return installed;
  }

  private async write(certPem: string, keyPem: string, x509: X509Certificate): Promise<X509Certificate> {
    const now = Date.now();
    if (Date.parse(x509.validTo) < now) throw new CertificateError(`the certificate expired on ${x509.validTo}`, 'CertificateString');
    const certOnly = certPem.replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----\s*/g, '');
    if (this.store) {
      // kept where the mounted files come from; the files follow when the kubelet refreshes the volume
      await this.store.save(certOnly, keyPem);
      return this.install(certOnly, keyPem, x509);
    }
    const { certFile, keyFile } = this.files!;
    try {
      writeFileSync(tmpOf(keyFile), keyPem, { mode: 0o600 });
      writeFileSync(tmpOf(certFile), certOnly, { mode: 0o644 });
      renameSync(tmpOf(keyFile), keyFile);
      renameSync(tmpOf(certFile), certFile);
      this.filesSeen = `${certOnly}\0${keyPem}`;
    } catch (e) {
      unlinkIfThere(tmpOf(keyFile), tmpOf(certFile));
      throw e;
    }
    return this.install(certOnly, keyPem, x509);
  }

  private install(certPem: string, keyPem: string, x509: X509Certificate): X509Certificate {
    this.certPem = certPem;
    this.keyPem = keyPem;
    this.x509 = x509;
    for (const fn of this.listeners) fn(this.certPem, this.keyPem);
    return x509;
  }

  /**
   * Re-read the certificate files: `reloaded` when they hold a new, valid pair (now installed and
   * handed to the listeners), `unchanged`, or why the new content was not taken.
   */
  reload(): 'reloaded' | 'unchanged' | { rejected: string } {
    if (!this.files) return 'unchanged';
    let certPem: string;
    let keyPem: string;
    try {
      certPem = readFileSync(this.files.certFile, 'utf8');
      keyPem = readFileSync(this.files.keyFile, 'utf8');
    } catch (e) {
      return { rejected: `cannot read the certificate files: ${(e as Error).message}` };
    }
    const seen = `${certPem}\0${keyPem}`;
    if (seen === this.filesSeen) return 'unchanged';
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(certPem);
      if (!x509.checkPrivateKey(createPrivateKey(keyPem))) return { rejected: 'the key file does not match the certificate file' };
    } catch (e) {
      return { rejected: `the certificate files do not parse: ${(e as Error).message}` };
    }
    this.filesSeen = seen;
    this.install(certPem, keyPem, x509);
    return 'reloaded';
  }

  /** reload() every intervalMs; report says what happened when something did. Returns the stop function. */
  watch(intervalMs: number, report: (r: 'reloaded' | { rejected: string }) => void): () => void {
    let lastRejected: string | undefined;
    const timer = setInterval(() => {
      const r = this.reload();
      if (r === 'unchanged') return;
      // one report per distinct problem, not one per tick
      if (r !== 'reloaded' && r.rejected === lastRejected) return;
      lastRejected = r === 'reloaded' ? undefined : r.rejected;
      report(r);
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The key, for the server's secure context only. */
  get key(): string {
    return this.keyPem;
  }
}

/** The PEM private key block(s) of a string, if any (ReplaceCertificate's CertificateString may carry the key after the certificate). */
export function privateKeyPem(s: string): string | undefined {
  const m = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/.exec(s);
  return m ? `${m[0]}\n` : undefined;
}
