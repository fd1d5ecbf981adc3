// The page's Redfish client: fetch() with the session token in the X-Auth-Token header (never a
// cookie, never a URL), Redfish error messages as thrown errors, the SSE stream read with fetch
// (EventSource cannot send a header). Only public Redfish URIs.

/** Whether a Message object is the Base registry's message `id` (any registry version). */
export const isMessage = (m, id) => Boolean(m && typeof m.MessageId === 'string' && m.MessageId.split('.').pop() === id);

export class RedfishError extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body) {
    const err = body && body.error;
    const infos = (err && err['@Message.ExtendedInfo']) || [];
    const messages = infos.map((m) => m.Message).filter(Boolean).join(' ');
    // error.message is the service's own explanation when it is not just the first message again
    const detail = err && typeof err.message === 'string' && !infos.some((m) => m.Message === err.message) && !/see @Message\.ExtendedInfo/.test(err.message) ? err.message : '';
    super([detail, messages].filter(Boolean).join(' ') || (err && err.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    /** @type {any[]} */
    this.messages = infos;
  }

  /** The first message of this error with the given Base id, if any. */
  message0(id) {
    return this.messages.find((m) => isMessage(m, id));
  }
}

const STORE = 'kvbmc.session';

export class Client {
  constructor() {
    /** @type {{token: string, uri: string, user: string} | null} */
    this.session = null;
    try {
      const saved = sessionStorage.getItem(STORE);
      if (saved) this.session = JSON.parse(saved);
    } catch {
      this.session = null;
    }
    /** called once when the service refuses the token */
    this.onUnauthorized = () => {};
    /** @type {(accountUri: string) => void} called when the service answers 403 PasswordChangeRequired */
    this.onPasswordChange = () => {};
  }

  get token() {
    return this.session ? this.session.token : '';
  }

  /**
   * POST /redfish/v1/SessionService/Sessions. Resolves to the account URI the user must change the
   * password of first (DSP0266: the session is granted with a PasswordChangeRequired message), or ''.
   */
  async login(user, password) {
    const res = await fetch('/redfish/v1/SessionService/Sessions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ UserName: user, Password: password }),
      credentials: 'omit',
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new RedfishError(res.status, body);
    const token = res.headers.get('X-Auth-Token');
    const uri = res.headers.get('Location') || (body && body['@odata.id']);
    if (!token || !uri) throw new Error('The service answered the login without a session token.');
    this.session = { token, uri, user };
    sessionStorage.setItem(STORE, JSON.stringify(this.session));
    const change = ((body && body['@Message.ExtendedInfo']) || []).find((m) => isMessage(m, 'PasswordChangeRequired'));
    return change ? String((change.MessageArgs || [])[0] || '') || 'unknown' : '';
  }

  /** DELETE the session, then forget the token whatever the answer. */
  async logout() {
    const s = this.session;
    this.forget();
    if (s) {
      await fetch(s.uri, { method: 'DELETE', headers: { 'X-Auth-Token': s.token }, credentials: 'omit' }).catch(() => undefined);
    }
  }

  forget() {
    this.session = null;
    sessionStorage.removeItem(STORE);
  }

  /**
   * One request. Resolves to {status, body, headers}; throws RedfishError on 4xx/5xx.
   * @param {string} method @param {string} uri @param {any} [body] @param {Record<string,string>} [extra]
   */
  async request(method, uri, body, extra = {}) {
    const headers = { Accept: 'application/json', 'X-Auth-Token': this.token, ...extra };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(uri, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
    const text = await res.text();
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (res.status === 401 && this.session) {
      this.forget();
      this.onUnauthorized();
    }
    if (!res.ok) {
      const err = new RedfishError(res.status, json);
      const change = res.status === 403 && err.message0('PasswordChangeRequired');
      if (change) this.onPasswordChange(String((change.MessageArgs || [])[0] || ''));
      throw err;
    }
    return { status: res.status, body: json, headers: res.headers };
  }

  async get(uri) {
    return (await this.request('GET', uri)).body;
  }

  post(uri, body) {
    return this.request('POST', uri, body);
  }

  patch(uri, body, etag) {
    return this.request('PATCH', uri, body, etag ? { 'If-Match': etag } : {});
  }

  delete(uri) {
    return this.request('DELETE', uri);
  }

  /**
   * Reads the Redfish SSE stream until `signal` aborts or the stream ends; calls onEvent with each
   * parsed Event payload. Resolves when the stream ends (the caller reconnects).
   * @param {(ev: any, id: string) => void} onEvent @param {AbortSignal} signal @param {string} [lastId]
   */
  async events(onEvent, signal, lastId) {
    const headers = { Accept: 'text/event-stream', 'X-Auth-Token': this.token };
    if (lastId) headers['Last-Event-ID'] = lastId;
    const res = await fetch('/redfish/v1/EventService/SSE', { headers, signal, credentials: 'omit', cache: 'no-store' });
    if (res.status === 401 && this.session) {
      this.forget();
      this.onUnauthorized();
    }
    if (!res.ok || !res.body) throw new RedfishError(res.status, await res.json().catch(() => null));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let cut;
      while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
        let id = '';
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length === 0) continue;
        try {
          onEvent(JSON.parse(data.join('\n')), id);
        } catch {
          /* a malformed event is skipped */
        }
      }
    }
  }
}
