// The BMC web page: plain ES modules, no framework, no build step. Everything it shows and does goes
// through the public Redfish API of this agent (api.js), plus the console websocket (console.js,
// loaded when the console page is first opened). What a role may do comes from its Role resource's
// AssignedPrivileges, and on the chosen system from the methods its answer allows (`Allow`: a
// shared agent's caller may hold another role on each system); the buttons it may not use are
// hidden (the service still enforces).
import { Client, RedfishError } from '/ui/api.js';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const api = new Client();

/** Reset types that do not interrupt a running guest: no confirmation. */
const HARMLESS_RESETS = new Set(['On', 'ForceOn', 'Resume']);
const RESET_HELP = {
  On: 'Power on',
  ForceOn: 'Power on at once',
  ForceOff: 'Cut the power: the guest is stopped at once, unsaved data is lost',
  GracefulShutdown: 'Ask the guest to shut down (ACPI)',
  GracefulRestart: 'Ask the guest to restart',
  ForceRestart: 'Restart at once, like the reset button',
  PowerCycle: 'Power off, then on again',
  Nmi: 'Send a non-maskable interrupt (the guest may crash-dump)',
  PushPowerButton: 'Press the power button',
  Pause: 'Pause the virtual machine',
  Resume: 'Resume a paused virtual machine',
  Suspend: 'Suspend the virtual machine',
};
const TERMINAL_TASK_STATES = new Set(['Completed', 'Exception', 'Killed', 'Cancelled', 'Interrupted']);
const LOG_PAGE_SIZE = 20;
const PAGES = ['overview', 'power', 'boot', 'media', 'console', 'log', 'accounts'];
const SYSTEM_STORE = 'kvbmc.system';
/** Paths of resources that belong to one system (shared mode: the id is the system's) */
const SYSTEM_SCOPED = /^\/redfish\/v1\/(Systems|Managers|Chassis)\/([^/]+)/;
const VIEWS = ['login-view', 'password-view', 'picker-view', 'app-view'];

const st = {
  /** the caller's systems (members of /redfish/v1/Systems) */
  systems: /** @type {string[]} */ ([]),
  systemUri: '',
  myAccountUri: '',
  /** the account URI whose password must change first, while the password page shows */
  changeUri: '',
  editing: /** @type {any} */ (null),
  /** on the chosen system: may this caller change it (PATCH in its `Allow`)? null = not said */
  systemControl: /** @type {boolean | null} */ (null),
  system: /** @type {any} */ (null),
  systemEtag: '',
  managerUri: '',
  privileges: new Set(),
  role: '',
  sse: /** @type {AbortController | null} */ (null),
  lastEventId: '',
  refreshTimer: 0,
  logEntries: /** @type {any[]} */ ([]),
  logPage: 0,
  console: /** @type {any} */ (null),
  consoleLoading: /** @type {Promise<any> | null} */ (null),
  tasks: new Map(),
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function say(text, kind = 'info') {
  const s = $('status');
  s.textContent = text;
  s.dataset.kind = kind;
}

function failed(e) {
  say(e instanceof Error ? e.message : String(e), 'error');
}

/** ConfigureComponents is judged on the chosen system (its Allow header), the rest by the account's role. */
const can = (p) => (p === 'ConfigureComponents' && st.systemControl !== null ? st.systemControl : st.privileges.has(p));

function showWho() {
  const here = st.systems.length > 1 && st.systemUri && !can('ConfigureComponents') ? ', read-only on this system' : '';
  $('who').textContent = `${api.session.user}${st.role ? ` (${st.role}${here})` : here ? ` (${here.slice(2)})` : ''}`;
}

function show(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
}

function applyRole() {
  for (const e of document.querySelectorAll('[data-needs]')) {
    /** @type {HTMLElement} */ (e).hidden = !can(/** @type {HTMLElement} */ (e).dataset.needs);
  }
  $('pw-readonly').hidden = can('ConfigureComponents');
  const admin = can('ConfigureUsers');
  $('nav-accounts').textContent = admin ? 'Accounts' : 'My account';
  $('accounts-title').textContent = admin ? 'Accounts' : 'My account';
  for (const id of ['boot-target', 'boot-enabled', 'boot-mode']) /** @type {HTMLSelectElement} */ ($(id)).disabled = !can('ConfigureComponents');
  if (api.session) showWho();
}

// ---- login / logout ---------------------------------------------------------------------------

function showLogin(message = '') {
  stopLive();
  show('login-view');
  $('logout').hidden = true;
  $('switch-system').hidden = true;
  $('who').textContent = '';
  $('system-name').textContent = '';
  $('login-error').textContent = message;
  document.title = 'Log in · KubeVirtBMC';
  /** @type {HTMLInputElement} */ ($('login-pass')).value = '';
  $('login-user').focus();
}

api.onUnauthorized = () => showLogin('Your session has ended; log in again.');
api.onPasswordChange = (uri) => showPasswordChange(uri);

// ---- password change required (DSP0266): the only page such a session gets ----------------------

function showPasswordChange(uri) {
  if (!$('password-view').hidden && st.changeUri === uri) return;
  stopLive();
  st.changeUri = uri;
  show('password-view');
  $('switch-system').hidden = true;
  $('system-name').textContent = '';
  $('who').textContent = api.session ? api.session.user : '';
  $('logout').hidden = false;
  $('password-error').textContent = '';
  document.title = 'Change your password · KubeVirtBMC';
  $('chpw-new').focus();
}

$('password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const next = /** @type {HTMLInputElement} */ ($('chpw-new'));
  const again = /** @type {HTMLInputElement} */ ($('chpw-confirm'));
  const button = /** @type {HTMLButtonElement} */ ($('chpw-submit'));
  $('password-error').textContent = '';
  if (next.value !== again.value) {
    $('password-error').textContent = 'The two passwords differ.';
    again.focus();
    return;
  }
  button.disabled = true;
  try {
    await api.patch(st.changeUri, { Password: next.value });
    next.value = '';
    again.value = '';
    st.changeUri = '';
    await start();
    say('Your password is changed.');
  } catch (e) {
    if (!(e instanceof RedfishError && e.status === 401)) $('password-error').textContent = e.message;
  } finally {
    button.disabled = false;
  }
});

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = /** @type {HTMLInputElement} */ ($('login-user')).value;
  const pass = /** @type {HTMLInputElement} */ ($('login-pass')).value;
  const button = /** @type {HTMLButtonElement} */ ($('login-submit'));
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    const mustChange = await api.login(user, pass);
    if (mustChange) showPasswordChange(mustChange);
    else await start();
  } catch (e) {
    $('login-error').textContent = e instanceof RedfishError && e.status === 401 ? 'Wrong user name or password.' : e.message;
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  sessionStorage.removeItem(SYSTEM_STORE);
  await api.logout();
  showLogin('Logged out.');
});

function stopLive() {
  if (st.sse) st.sse.abort();
  st.sse = null;
  if (st.console) st.console.close();
  st.console = null;
  st.consoleLoading = null;
  for (const t of st.tasks.values()) clearTimeout(t);
  st.tasks.clear();
}

// ---- start: what this user may do, which system ---------------------------------------------------

async function findPrivileges() {
  st.privileges = new Set();
  st.role = '';
  st.myAccountUri = '';
  try {
    const accounts = await api.get('/redfish/v1/AccountService/Accounts');
    for (const m of accounts.Members || []) {
      const a = await api.get(m['@odata.id']).catch(() => null);
      if (!a || a.UserName !== api.session.user) continue;
      st.role = a.RoleId;
      st.myAccountUri = m['@odata.id'];
      const roleUri = (a.Links && a.Links.Role && a.Links.Role['@odata.id']) || `/redfish/v1/AccountService/Roles/${encodeURIComponent(a.RoleId)}`;
      const role = await api.get(roleUri);
      st.privileges = new Set(role.AssignedPrivileges || []);
      break;
    }
  } catch (e) {
    if (e instanceof RedfishError && e.status === 401) throw e;
    // unknown privileges: show no controls; the service enforces anyway
  }
}

/** After login (or a reload with a saved session): the caller's systems, then one of them. */
async function start() {
  $('login-view').hidden = true;
  let systems;
  try {
    const root = await api.get('/redfish/v1');
    systems = await api.get(root.Systems['@odata.id']);
  } catch (e) {
    // the password page is already up (api.onPasswordChange)
    if (e instanceof RedfishError && e.message0('PasswordChangeRequired')) return;
    throw e;
  }
  st.systems = (systems.Members || []).map((m) => m['@odata.id']);
  if (st.systems.length === 0) throw new Error('This service has no system for this account.');
  await findPrivileges();
  st.systemUri = '';
  st.systemControl = null;
  showWho();
  $('logout').hidden = false;
  $('switch-system').hidden = st.systems.length < 2;
  const saved = sessionStorage.getItem(SYSTEM_STORE);
  if (st.systems.length === 1) await openSystem(st.systems[0]);
  else if (saved && st.systems.includes(saved)) await openSystem(saved);
  else await showPicker();
}

/** Shared mode: the caller's systems (the service lists no other), one button each. */
async function showPicker() {
  stopLive();
  sessionStorage.removeItem(SYSTEM_STORE);
  const systems = await Promise.all(st.systems.map((uri) => api.get(uri).catch(() => ({ '@odata.id': uri, Id: uri.split('/').pop(), Name: '' }))));
  $('picker-list').replaceChildren(
    ...systems.map((s) => {
      const badge = el('span', { class: 'badge' });
      powerBadge(badge, s.PowerState);
      return el('li', {},
        el('button', { type: 'button', 'data-system': s.Id, onclick: () => openSystem(s['@odata.id']).catch(failed) },
          el('span', { text: s.Name && s.Name !== s.Id ? `${s.Name} (${s.Id})` : s.Id }), badge));
    }),
  );
  show('picker-view');
  $('system-name').textContent = '';
  document.title = 'Choose a system · KubeVirtBMC';
  $('picker-title').setAttribute('tabindex', '-1');
  $('picker-title').focus();
}

$('switch-system').addEventListener('click', () => showPicker().catch(failed));

async function openSystem(uri) {
  stopLive();
  st.systemUri = uri;
  st.system = null;
  st.systemControl = null;
  st.logEntries = [];
  st.logPage = 0;
  // what the previous system showed goes
  $('media-list').replaceChildren();
  $('ov-events').replaceChildren();
  $('pw-actions').replaceChildren();
  sessionStorage.setItem(SYSTEM_STORE, uri);
  await loadSystem();
  const mgr = st.system.Links && st.system.Links.ManagedBy && st.system.Links.ManagedBy[0];
  st.managerUri = mgr ? mgr['@odata.id'] : '';
  show('app-view');
  applyRole();
  startLive();
  seedEvents();
  loadMedia(false).catch(() => undefined);
  route();
}

// ---- the system resource and what shows it ------------------------------------------------------

async function loadSystem() {
  const r = await api.request('GET', st.systemUri);
  st.system = r.body;
  st.systemEtag = r.headers.get('ETag') || '';
  const allow = r.headers.get('Allow');
  const control = allow === null ? null : allow.split(',').map((m) => m.trim()).includes('PATCH');
  if (control !== st.systemControl) {
    st.systemControl = control;
    if (!$('app-view').hidden) applyRole();
  }
  renderSystem();
}

function powerBadge(node, state) {
  node.textContent = state || 'Unknown';
  node.dataset.state = state || 'Unknown';
}

function renderSystem() {
  const s = st.system;
  if (!s) return;
  $('system-name').textContent = s.Name || s.Id;
  document.title = `${s.Name || s.Id} · KubeVirtBMC`;
  $('ov-name').textContent = `${s.Name} — ${s.Description || ''}`;
  powerBadge($('ov-power'), s.PowerState);
  powerBadge($('pw-state'), s.PowerState);
  $('ov-health').textContent = (s.Status && s.Status.Health) || 'Unknown';
  $('ov-state').textContent = (s.Status && s.Status.State) || 'Unknown';
  $('ov-model').textContent = [s.Manufacturer, s.Model].filter(Boolean).join(' ');
  $('ov-uuid').textContent = s.UUID || '';
  const b = s.Boot || {};
  const bootText = b.BootSourceOverrideEnabled === 'Disabled' || !b.BootSourceOverrideEnabled
    ? 'none'
    : `${b.BootSourceOverrideTarget} (${b.BootSourceOverrideEnabled}, ${b.BootSourceOverrideMode || 'mode not set'})`;
  $('ov-boot').textContent = bootText;
  // the BMC's identify indicator (also IPMI chassis identify); absent on an older agent
  const led = s.IndicatorLED;
  $('ov-identify').textContent = led === undefined ? 'not offered' : led === 'Off' ? 'off' : led === 'Lit' ? 'on (steady)' : 'blinking';
  const toggle = /** @type {HTMLButtonElement} */ ($('ov-identify-toggle'));
  toggle.textContent = s.LocationIndicatorActive ? 'Turn off' : 'Identify';
  toggle.disabled = led === undefined;
  $('boot-current').textContent = `${b.BootSourceOverrideTarget}, ${b.BootSourceOverrideEnabled}, ${b.BootSourceOverrideMode || '—'}`;
}

function scheduleRefresh(what) {
  clearTimeout(st.refreshTimer);
  st.refreshTimer = window.setTimeout(async () => {
    try {
      await loadSystem();
      if (what.media || currentPage() === 'media') await loadMedia(false);
      if (currentPage() === 'log') await loadLog(false);
    } catch (e) {
      if (!(e instanceof RedfishError && e.status === 401)) failed(e);
    }
  }, 50);
}

// ---- live: the SSE stream ---------------------------------------------------------------------

function addEventLine(text, severity, when) {
  const list = $('ov-events');
  const time = when ? new Date(when).toLocaleTimeString() : '';
  list.prepend(el('li', { 'data-severity': severity || 'OK' }, el('time', { datetime: when || '', text: time }), ' ', text));
  while (list.children.length > 8) list.lastElementChild.remove();
}

/** Is an event's origin the chosen system's (its system, manager or chassis) or service-level? */
function concernsChosen(origin) {
  const m = SYSTEM_SCOPED.exec(origin);
  if (!m) return true;
  const own = [st.systemUri, st.managerUri, ...((st.system && st.system.Links && st.system.Links.Chassis) || []).map((c) => c['@odata.id'])];
  return own.some((u) => u && (origin === u || origin.startsWith(`${u}/`)));
}

function startLive() {
  if (st.sse) st.sse.abort();
  const ctl = new AbortController();
  st.sse = ctl;
  let delay = 500;
  const run = async () => {
    while (!ctl.signal.aborted && api.session) {
      try {
        $('ov-live').textContent = 'connecting…';
        const opened = api.events((ev, id) => {
          if (id) st.lastEventId = id;
          $('ov-live').textContent = 'live (Redfish SSE)';
          delay = 500;
          let media = false;
          let mine = false;
          for (const e of ev.Events || []) {
            const origin = (e.OriginOfCondition && e.OriginOfCondition['@odata.id']) || '';
            // shared mode: the stream carries every system of the caller; another one's events are not this page's
            if (!concernsChosen(origin)) continue;
            mine = true;
            addEventLine(e.Message || e.MessageId, e.MessageSeverity || e.Severity, e.EventTimestamp);
            if (origin.includes('/VirtualMedia')) media = true;
          }
          if (mine) scheduleRefresh({ media });
        }, ctl.signal, st.lastEventId);
        $('ov-live').textContent = 'live (Redfish SSE)';
        await opened;
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof RedfishError && e.status === 401) return;
      }
      if (ctl.signal.aborted) return;
      $('ov-live').textContent = 'reconnecting…';
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
      // missed changes while away
      scheduleRefresh({ media: true });
    }
  };
  void run();
}

async function seedEvents() {
  try {
    const entries = await logEntries();
    for (const e of entries.slice(0, 5).reverse()) addEventLine(e.Message, e.Severity, e.Created);
  } catch {
    /* the log is optional for the overview */
  }
}

// ---- pages ----------------------------------------------------------------------------------------

function currentPage() {
  const p = location.hash.replace(/^#\//, '');
  return PAGES.includes(p) ? p : 'overview';
}

function route() {
  if (!api.session || $('app-view').hidden) return;
  let page = currentPage();
  if (page === 'console' && !can('ConfigureComponents')) page = 'overview';
  for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (/** @type {HTMLElement} */ (a).dataset.nav === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const load = { power: renderPower, boot: renderBoot, media: () => loadMedia(true), console: openConsole, log: () => loadLog(true), accounts: loadAccounts }[page];
  if (load) Promise.resolve(load()).catch((e) => { if (!(e instanceof RedfishError && e.status === 401)) failed(e); });
}
// the skip link moves focus without touching the fragment (the fragment is the page route)
document.querySelector('.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  const h = document.querySelector('.page:not([hidden]) h1, #login-view:not([hidden]) h1');
  const target = /** @type {HTMLElement} */ (h || $('main'));
  target.setAttribute('tabindex', '-1');
  target.focus();
});
window.addEventListener('hashchange', () => {
  if (!location.hash.startsWith('#/')) return;
  route();
  const h = document.querySelector('.page:not([hidden]) h1');
  if (h) {
    h.setAttribute('tabindex', '-1');
    /** @type {HTMLElement} */ (h).focus();
  }
});

// ---- power ---------------------------------------------------------------------------------------

async function resetTypes() {
  const action = st.system.Actions && st.system.Actions['#ComputerSystem.Reset'];
  if (!action) return { target: '', types: [] };
  let types = action['ResetType@Redfish.AllowableValues'];
  if (action['@Redfish.ActionInfo']) {
    const info = await api.get(action['@Redfish.ActionInfo']).catch(() => null);
    const p = info && (info.Parameters || []).find((x) => x.Name === 'ResetType');
    if (p && p.AllowableValues) types = p.AllowableValues;
  }
  return { target: action.target, types: types || [] };
}

function confirmAction(title, text) {
  const d = /** @type {HTMLDialogElement} */ ($('confirm'));
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  d.returnValue = '';
  d.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

async function renderPower() {
  const box = $('pw-actions');
  const { target, types } = await resetTypes();
  box.replaceChildren(
    ...types.map((t) =>
      el('button', {
        type: 'button',
        'data-reset': t,
        class: HARMLESS_RESETS.has(t) ? '' : 'danger',
        title: RESET_HELP[t] || t,
        'aria-describedby': 'pw-state',
        text: t,
        onclick: async () => {
          if (!HARMLESS_RESETS.has(t)) {
            const ok = await confirmAction(`${t}?`, `${RESET_HELP[t] || t} — ${st.system.Name}.`);
            if (!ok) return;
          }
          try {
            say(`Sending ${t}…`);
            await api.post(target, { ResetType: t });
            say(`${t} accepted.`);
            scheduleRefresh({});
          } catch (e) {
            failed(e);
          }
        },
      }),
    ),
  );
}

// ---- boot override --------------------------------------------------------------------------------

function fillSelect(select, values, current) {
  select.replaceChildren(...(values || [current]).filter((v) => v !== undefined && v !== null).map((v) => el('option', { value: v, text: v, selected: v === current })));
}

async function renderBoot() {
  await loadSystem();
  const b = st.system.Boot || {};
  fillSelect($('boot-target'), b['BootSourceOverrideTarget@Redfish.AllowableValues'], b.BootSourceOverrideTarget);
  fillSelect($('boot-enabled'), b['BootSourceOverrideEnabled@Redfish.AllowableValues'], b.BootSourceOverrideEnabled);
  fillSelect($('boot-mode'), b['BootSourceOverrideMode@Redfish.AllowableValues'], b.BootSourceOverrideMode);
}

$('ov-identify-toggle').addEventListener('click', async () => {
  const on = !(st.system && st.system.LocationIndicatorActive);
  try {
    await api.patch(st.systemUri, { LocationIndicatorActive: on });
    await loadSystem();
    say(on ? 'Identify light on (blinking) until turned off.' : 'Identify light off.');
  } catch (e) {
    failed(e);
  }
});

$('boot-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const value = (id) => /** @type {HTMLSelectElement} */ ($(id)).value;
  const boot = { BootSourceOverrideTarget: value('boot-target'), BootSourceOverrideEnabled: value('boot-enabled') };
  if (value('boot-mode')) boot.BootSourceOverrideMode = value('boot-mode');
  try {
    await api.patch(st.systemUri, { Boot: boot });
    await renderBoot();
    say(`Boot override set: ${$('boot-current').textContent}.`);
  } catch (e) {
    failed(e);
  }
});

// ---- virtual media -------------------------------------------------------------------------------

async function mediaMembers() {
  const link = st.system.VirtualMedia && st.system.VirtualMedia['@odata.id'];
  if (!link) return [];
  const coll = await api.get(link);
  return Promise.all((coll.Members || []).map((m) => api.get(m['@odata.id'])));
}

async function loadMedia(rebuild) {
  const list = $('media-list');
  const media = await mediaMembers();
  $('ov-media').textContent = media.map((m) => `${m.Name}: ${m.Inserted ? m.Image : 'empty'}`).join('; ') || 'none';
  if (currentPage() !== 'media' && !rebuild) return;
  for (const m of media) {
    const id = `vm-${m.Id}`;
    let card = document.getElementById(id);
    if (!card || rebuild) {
      const next = mediaCard(m);
      if (card) card.replaceWith(next);
      else list.append(next);
      card = next;
    }
    const set = (k, v) => { /** @type {HTMLElement} */ (card.querySelector(`[data-f="${k}"]`)).textContent = v; };
    set('inserted', m.Inserted ? 'Inserted' : 'Not inserted');
    set('image', m.Image || '—');
    set('via', m.ConnectedVia || '—');
    /** @type {HTMLButtonElement} */ (card.querySelector('[data-act="eject"]')).disabled = !m.Inserted;
  }
}

function mediaCard(m) {
  const id = `vm-${m.Id}`;
  const insert = m.Actions && m.Actions['#VirtualMedia.InsertMedia'];
  const eject = m.Actions && m.Actions['#VirtualMedia.EjectMedia'];
  const progress = el('progress', { max: 100, value: 0, hidden: true, 'aria-label': `${m.Name} task progress` });
  const taskText = el('p', { class: 'hint', 'data-f': 'task', 'aria-live': 'polite' });
  const error = el('p', { class: 'error', role: 'alert', 'data-f': 'error' });
  const urlInput = el('input', { id: `${id}-url`, type: 'url', required: true, placeholder: 'https://example.com/installer.iso', autocomplete: 'off' });
  // InsertMedia/EjectMedia need ConfigureManager (DMTF Privilege Registry, generated/redfish/routes.ts)
  const form = el('form', { class: 'form', 'data-needs': 'ConfigureManager' },
    el('label', { for: `${id}-url`, text: `Image URL for ${m.Name}` }),
    urlInput,
    el('div', { class: 'buttons' },
      el('button', { type: 'submit', 'data-act': 'insert', text: 'Insert', disabled: !insert }),
      el('button', { type: 'button', 'data-act': 'eject', class: 'danger', text: 'Eject', disabled: !eject })),
  );
  const card = el('section', { class: 'card', id, 'aria-labelledby': `${id}-title` },
    el('h2', { id: `${id}-title`, text: `${m.Name} (${(m.MediaTypes || []).join(', ')})` }),
    el('dl', { class: 'facts' },
      el('dt', { text: 'Status' }), el('dd', { 'data-f': 'inserted' }),
      el('dt', { text: 'Image' }), el('dd', { 'data-f': 'image' }),
      el('dt', { text: 'Connected via' }), el('dd', { 'data-f': 'via' })),
    form, progress, taskText, error);
  form.hidden = !can('ConfigureManager');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    taskText.textContent = 'Inserting…';
    try {
      const r = await api.post(insert.target, { Image: urlInput.value, Inserted: true, WriteProtected: true });
      if (r.status === 202 && r.body && r.body['@odata.id']) await followTask(r.body['@odata.id'], progress, taskText, error);
      else taskText.textContent = 'Inserted.';
    } catch (e) {
      taskText.textContent = '';
      error.textContent = e.message;
    }
    await loadMedia(false).catch(() => undefined);
  });
  card.querySelector('[data-act="eject"]').addEventListener('click', async () => {
    if (!(await confirmAction(`Eject ${m.Name}?`, 'The guest loses the disc at once.'))) return;
    error.textContent = '';
    try {
      const r = await api.post(eject.target, {});
      if (r.status === 202 && r.body && r.body['@odata.id']) await followTask(r.body['@odata.id'], progress, taskText, error);
      else taskText.textContent = 'Ejected.';
    } catch (e) {
      error.textContent = e.message;
    }
    await loadMedia(false).catch(() => undefined);
  });
  return card;
}

/** Polls a Task until it ends; shows its progress and, when it fails, its last message. */
function followTask(uri, progress, text, error) {
  progress.hidden = false;
  progress.value = 0;
  return new Promise((resolve) => {
    const tick = async () => {
      let t;
      try {
        t = await api.get(uri);
      } catch (e) {
        error.textContent = e.message;
        progress.hidden = true;
        return resolve(undefined);
      }
      const pct = typeof t.PercentComplete === 'number' ? t.PercentComplete : 0;
      progress.value = pct;
      text.textContent = `Task ${t.Id}: ${t.TaskState} ${pct} %`;
      if (TERMINAL_TASK_STATES.has(t.TaskState)) {
        st.tasks.delete(uri);
        progress.hidden = t.TaskState === 'Completed' ? progress.hidden : true;
        if (t.TaskState !== 'Completed' || t.TaskStatus !== 'OK') {
          const msgs = (t.Messages || []).filter((m) => m.MessageSeverity !== 'OK');
          error.textContent = (msgs.length ? msgs : t.Messages || []).map((m) => m.Message).slice(-1)[0] || `Task ${t.TaskState}`;
        }
        text.textContent = `Task ${t.Id}: ${t.TaskState} (${t.TaskStatus})`;
        return resolve(t);
      }
      st.tasks.set(uri, setTimeout(tick, 300));
    };
    void tick();
  });
}

// ---- serial console -------------------------------------------------------------------------------

async function openConsole() {
  if (st.console) return st.console.fit();
  st.consoleLoading ??= import('/ui/console.js').then((m) =>
    m.openConsole({
      container: $('terminal'),
      systemId: st.system.Id,
      token: () => api.token,
      canWrite: can('ConfigureComponents'),
      onStatus: (state, writerText) => {
        powerBadge($('con-state'), state);
        $('con-writer').textContent = writerText;
      },
      onUnauthorized: () => {
        api.forget();
        showLogin('Your session has ended; log in again.');
      },
    }),
  );
  st.console = await st.consoleLoading;
}
$('con-reconnect').addEventListener('click', () => st.console && st.console.reconnect());
$('con-break').addEventListener('click', () => st.console && st.console.sendBreak());
$('con-copy').addEventListener('click', async () => {
  const text = st.console ? st.console.selection() : '';
  if (!text) return say('Select text in the terminal first.');
  try {
    await navigator.clipboard.writeText(text);
    say('Copied.');
  } catch {
    say('The browser refused the clipboard; use Ctrl+Shift+C or the context menu.', 'error');
  }
});
$('con-paste').addEventListener('click', async () => {
  try {
    const text = await navigator.clipboard.readText();
    if (st.console) st.console.paste(text);
  } catch {
    say('The browser refused the clipboard; use Ctrl+Shift+V in the terminal.', 'error');
  }
});

// ---- event log ----------------------------------------------------------------------------------

async function logEntries() {
  if (!st.managerUri) return [];
  const services = await api.get(`${st.managerUri}/LogServices`);
  const first = services.Members && services.Members[0];
  if (!first) return [];
  const svc = await api.get(first['@odata.id']);
  let uri = svc.Entries && svc.Entries['@odata.id'];
  const all = [];
  // the whole collection, following nextLink pages when the service pages it
  for (let i = 0; uri && i < 100; i++) {
    const page = await api.get(uri);
    all.push(...(page.Members || []));
    uri = page['Members@odata.nextLink'];
  }
  return all.sort((a, b) => Number(b.Id) - Number(a.Id) || String(b.Created).localeCompare(String(a.Created)));
}

async function loadLog(reset) {
  st.logEntries = await logEntries();
  if (reset) st.logPage = 0;
  renderLog();
}

function renderLog() {
  const pages = Math.max(1, Math.ceil(st.logEntries.length / LOG_PAGE_SIZE));
  st.logPage = Math.min(st.logPage, pages - 1);
  const rows = st.logEntries.slice(st.logPage * LOG_PAGE_SIZE, (st.logPage + 1) * LOG_PAGE_SIZE);
  $('log-rows').replaceChildren(
    ...rows.map((e) => el('tr', { 'data-severity': e.Severity },
      el('td', { text: e.Id }),
      el('td', {}, el('time', { datetime: e.Created, text: new Date(e.Created).toLocaleString() })),
      el('td', { text: e.Severity }),
      el('td', { text: e.Message }))),
  );
  $('log-page').textContent = `Page ${st.logPage + 1} of ${pages} (${st.logEntries.length} entries)`;
  /** @type {HTMLButtonElement} */ ($('log-newer')).disabled = st.logPage === 0;
  /** @type {HTMLButtonElement} */ ($('log-older')).disabled = st.logPage >= pages - 1;
}
$('log-newer').addEventListener('click', () => { st.logPage--; renderLog(); });
$('log-older').addEventListener('click', () => { st.logPage++; renderLog(); });
$('log-refresh').addEventListener('click', () => loadLog(false).catch(failed));

// ---- accounts: Administrators manage them; everyone changes their own password ----------------

const accError = (e) => {
  if (e instanceof RedfishError && e.status === 401) return;
  $('acc-error').textContent = e instanceof Error ? e.message : String(e);
};
const yes = (b) => (b ? 'yes' : 'no');

async function loadAccounts() {
  const admin = can('ConfigureUsers');
  const r = await api.request('GET', '/redfish/v1/AccountService/Accounts');
  const accounts = await Promise.all((r.body.Members || []).map((m) => api.get(m['@odata.id'])));
  $('acc-rows').replaceChildren(
    ...accounts.map((a) => el('tr', { 'data-user': a.UserName },
      el('td', { text: a.Id }),
      el('td', { text: a.UserName }),
      el('td', { text: a.RoleId }),
      el('td', { text: yes(a.Enabled) }),
      el('td', { text: yes(a.Locked) }),
      el('td', { text: yes(a.PasswordChangeRequired) }),
      admin ? el('td', {}, el('button', { type: 'button', 'data-edit': a.UserName, 'aria-label': `Edit account ${a.UserName}`, text: 'Edit', onclick: () => openEdit(a) })) : null)),
  );
  const service = await api.get('/redfish/v1/AccountService').catch(() => null);
  const lengths = service && service.MinPasswordLength ? ` Passwords: ${service.MinPasswordLength}–${service.MaxPasswordLength} bytes.` : '';
  const shared = st.systems.length > 1 ? ` Every system keeps its own accounts: these are the accounts of ${st.systems[0].split('/').pop()}.` : '';
  $('acc-note').textContent = admin
    ? `One account serves Redfish and IPMI.${shared}${lengths}`
    : `Your account. Only an Administrator adds accounts or changes roles.${shared}${lengths}`;
  if (admin) {
    const roles = await api.get('/redfish/v1/AccountService/Roles').then((c) => (c.Members || []).map((m) => m['@odata.id'].split('/').pop())).catch(() => ['Administrator', 'Operator', 'ReadOnly']);
    const addRole = /** @type {HTMLSelectElement} */ ($('add-role'));
    if (addRole.options.length === 0) fillSelect(addRole, roles, roles.includes('ReadOnly') ? 'ReadOnly' : roles[0]);
    fillSelect($('edit-role'), roles, st.editing ? st.editing.RoleId : roles[0]);
    if (st.editing) {
      const fresh = accounts.find((a) => a['@odata.id'] === st.editing['@odata.id']);
      if (fresh) fillEdit(fresh);
      else closeEdit();
    }
  }
  $('acc-self-card').hidden = !st.myAccountUri;
}

function fillEdit(a) {
  st.editing = a;
  /** @type {HTMLSelectElement} */ ($('edit-role')).value = a.RoleId;
  /** @type {HTMLInputElement} */ ($('edit-enabled')).checked = Boolean(a.Enabled);
  /** @type {HTMLInputElement} */ ($('edit-change')).checked = Boolean(a.PasswordChangeRequired);
  /** @type {HTMLInputElement} */ ($('edit-pass')).value = '';
  /** @type {HTMLButtonElement} */ ($('edit-unlock')).disabled = !a.Locked;
  $('acc-edit-title').textContent = `Edit account ${a.UserName}`;
}

function openEdit(a) {
  $('acc-error').textContent = '';
  fillEdit(a);
  $('acc-edit-card').hidden = false;
  $('acc-edit-title').focus();
}

function closeEdit() {
  st.editing = null;
  $('acc-edit-card').hidden = true;
}

$('edit-close').addEventListener('click', () => {
  const name = st.editing && st.editing.UserName;
  closeEdit();
  const back = name && document.querySelector(`[data-edit="${window.CSS.escape(name)}"]`);
  if (back) /** @type {HTMLElement} */ (back).focus();
});

$('acc-edit').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const a = st.editing;
  if (!a) return;
  $('acc-error').textContent = '';
  const body = {};
  const role = /** @type {HTMLSelectElement} */ ($('edit-role')).value;
  const enabled = /** @type {HTMLInputElement} */ ($('edit-enabled')).checked;
  const change = /** @type {HTMLInputElement} */ ($('edit-change')).checked;
  const pass = /** @type {HTMLInputElement} */ ($('edit-pass')).value;
  if (role !== a.RoleId) body.RoleId = role;
  if (enabled !== Boolean(a.Enabled)) body.Enabled = enabled;
  if (change !== Boolean(a.PasswordChangeRequired)) body.PasswordChangeRequired = change;
  if (pass) body.Password = pass;
  if (Object.keys(body).length === 0) return say('Nothing to change.');
  try {
    await api.patch(a['@odata.id'], body);
    // the message comes with the table that shows it (screen readers and tests read them together)
    await loadAccounts();
    say(`Account ${a.UserName} saved.`);
  } catch (e) {
    accError(e);
  }
});

$('edit-unlock').addEventListener('click', async () => {
  const a = st.editing;
  if (!a) return;
  $('acc-error').textContent = '';
  try {
    await api.patch(a['@odata.id'], { Locked: false });
    await loadAccounts();
    say(`Account ${a.UserName} unlocked.`);
  } catch (e) {
    accError(e);
  }
});

$('edit-delete').addEventListener('click', async () => {
  const a = st.editing;
  if (!a) return;
  if (!(await confirmAction(`Delete ${a.UserName}?`, `The account ${a.UserName} can no longer log in, over Redfish or IPMI.`))) return;
  $('acc-error').textContent = '';
  try {
    await api.delete(a['@odata.id']);
    closeEdit();
    await loadAccounts();
    say(`Account ${a.UserName} deleted.`);
    $('accounts-title').focus();
  } catch (e) {
    accError(e);
    $('edit-delete').focus();
  }
});

$('acc-add').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('acc-error').textContent = '';
  const value = (id) => /** @type {HTMLInputElement} */ ($(id)).value;
  const checked = (id) => /** @type {HTMLInputElement} */ ($(id)).checked;
  const name = value('add-user');
  try {
    await api.post('/redfish/v1/AccountService/Accounts', {
      UserName: name,
      Password: value('add-pass'),
      RoleId: value('add-role'),
      Enabled: checked('add-enabled'),
      PasswordChangeRequired: checked('add-change'),
    });
    /** @type {HTMLFormElement} */ ($('acc-add')).reset();
    await loadAccounts();
    say(`Account ${name} added.`);
  } catch (e) {
    accError(e);
  }
});

$('acc-self').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('acc-error').textContent = '';
  const next = /** @type {HTMLInputElement} */ ($('self-pass'));
  const again = /** @type {HTMLInputElement} */ ($('self-confirm'));
  if (next.value !== again.value) return accError(new Error('The two passwords differ.'));
  try {
    await api.patch(st.myAccountUri, { Password: next.value });
    next.value = '';
    again.value = '';
    say('Your password is changed.');
  } catch (e) {
    accError(e);
  }
});

// ---- go ---------------------------------------------------------------------------------------

if (api.session) start().catch((e) => showLogin(e instanceof RedfishError && e.status === 401 ? 'Your session has ended; log in again.' : e.message));
else showLogin();
