// The serial console page: xterm.js (the package's own prebuilt ES module) over the agent's console
// websocket (/ui/ws/console/{id}, subprotocol kvbmc.console.v1; src/redfish/console-ws.ts). The
// session token goes in the first message, never in the URL. In shared mode the path's id is the
// chosen system's (each VM's console on the one port). Reconnects by itself (backoff) when
// the socket drops; a VM reset keeps the socket and only flips the state offline → connected.
import { Terminal } from '/ui/vendor/xterm.mjs';
import { FitAddon } from '/ui/vendor/addon-fit.mjs';

const SUBPROTOCOL = 'kvbmc.console.v1';
const CLOSE_UNAUTHORIZED = 4401;
/** the account may not use the console (role, or a password change pending): no retry */
const CLOSE_FORBIDDEN = 4403;
const CLOSE_NO_CONSOLE = 4404;

/**
 * xterm.js writes its theme and cell sizes into <style> elements, which the page's CSP (no
 * 'unsafe-inline' styles) refuses. Mirror each such element into a constructed style sheet
 * (document.adoptedStyleSheets, which the CSP does not govern: no markup is injected).
 */
function mirrorStyles(root) {
  const sheets = new Map();
  const base = [...document.adoptedStyleSheets];
  const sync = () => {
    for (const [node, sheet] of sheets) {
      if (!node.isConnected) sheets.delete(node);
      else sheet.replaceSync(node.textContent || '');
    }
    for (const node of root.querySelectorAll('style')) {
      if (sheets.has(node)) continue;
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(node.textContent || '');
      sheets.set(node, sheet);
    }
    document.adoptedStyleSheets = [...base, ...sheets.values()];
  };
  const obs = new MutationObserver(sync);
  obs.observe(root, { subtree: true, childList: true, characterData: true });
  sync();
  return () => obs.disconnect();
}

/**
 * @param {{container: HTMLElement, systemId: string, token: () => string, canWrite: boolean,
 *   onStatus: (state: string, writerText: string) => void, onUnauthorized: () => void}} opts
 */
export function openConsole(opts) {
  const term = new Terminal({
    convertEol: false,
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    screenReaderMode: false,
    disableStdin: !opts.canWrite,
    theme: { background: '#101418', foreground: '#e6e6e6' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  const unmirror = mirrorStyles(opts.container);
  term.open(opts.container);
  // Escape leaves the terminal for keyboard users (Tab then moves on); xterm otherwise keeps focus.
  term.attachCustomKeyEventHandler((ev) => {
    if (ev.type === 'keydown' && ev.key === 'Escape' && ev.shiftKey) {
      /** @type {HTMLElement | null} */ (document.getElementById('con-reconnect'))?.focus();
      return false;
    }
    return true;
  });
  const fitNow = () => {
    try {
      if (opts.container.offsetParent !== null) fit.fit();
    } catch {
      /* not laid out yet */
    }
  };
  const resizeObs = new ResizeObserver(fitNow);
  resizeObs.observe(opts.container);
  fitNow();

  const enc = new TextEncoder();
  /** @type {WebSocket | null} */
  let ws = null;
  let closed = false;
  let delay = 500;
  let retry = 0;
  let state = 'connecting';
  let writerText = '';
  const status = () => opts.onStatus(state, writerText);

  const connect = () => {
    clearTimeout(retry);
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
    state = 'connecting';
    status();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const sock = new WebSocket(`${scheme}//${location.host}/ui/ws/console/${encodeURIComponent(opts.systemId)}`, [SUBPROTOCOL]);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    sock.onopen = () => sock.send(JSON.stringify({ type: 'auth', token: opts.token(), cols: term.cols, rows: term.rows }));
    sock.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data));
        return;
      }
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m.type === 'hello') {
        delay = 500;
        term.reset();
        state = m.state;
        writerText = m.message || '';
      } else if (m.type === 'state') {
        state = m.state;
        if (m.state === 'offline') term.write('\r\n\x1b[2m[console offline: the VM is off or restarting]\x1b[0m\r\n');
      } else if (m.type === 'writer' || m.type === 'notice' || m.type === 'error') {
        writerText = m.message || '';
      }
      status();
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === CLOSE_UNAUTHORIZED) {
        state = 'closed';
        writerText = 'The session has ended.';
        status();
        closed = true;
        opts.onUnauthorized();
        return;
      }
      if (ev.code === CLOSE_NO_CONSOLE || ev.code === CLOSE_FORBIDDEN || closed) {
        state = 'closed';
        status();
        return;
      }
      state = 'disconnected';
      writerText = `Reconnecting in ${Math.round(delay / 100) / 10} s…`;
      status();
      retry = window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  };

  const sendInput = (text) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(text));
  };
  term.onData(sendInput);
  term.onResize(({ cols, rows }) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  connect();

  return {
    term,
    fit: fitNow,
    reconnect: () => {
      closed = false;
      delay = 500;
      connect();
    },
    sendBreak: () => ws && ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'break' })),
    selection: () => term.getSelection(),
    paste: (text) => term.paste(text),
    close: () => {
      closed = true;
      clearTimeout(retry);
      if (ws) ws.close();
      ws = null;
      resizeObs.disconnect();
      unmirror();
      term.dispose();
      opts.container.replaceChildren();
    },
  };
}
