/**
 * Real Redfish clients against the EventService: sushy get_event_service() and
 * subscriptions.create(...), DMTF Tacklebox rf_event_service.py info/subscribe/unsubscribe.
 * Destinations are on 127.0.0.1 (nothing is sent anywhere else).
 */
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { havePythonModule, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

// DMTF Tacklebox is not packaged (not in Debian; CI cannot fetch GitHub): this is a development
// check that runs when a checkout is named (TACKLEBOX_DIR, TACKLEBOX_PYTHONPATH; see
// ../shared/conformance.md). The same request sequence runs in every CI run through sushy above.
const TACKLEBOX = process.env.TACKLEBOX_DIR;
const TACKLEBOX_PY = process.env.TACKLEBOX_PYTHONPATH ?? '';
const devIt = TACKLEBOX ? it : it.skip;

describe('EventService with sushy and Tacklebox', function () {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent();
  });
  afterEach(async () => {
    await t.close();
  });

  it('sushy get_event_service() and subscriptions.create(...)', async function () {
    requireClient(this, havePythonModule('sushy'), 'python3-sushy');
    const py = `
import sushy, sys
c = sushy.Sushy(sys.argv[1] + '/redfish/v1', auth=sushy.auth.BasicAuth(sys.argv[2], sys.argv[3]))
es = c.get_event_service()
print('enabled', es.service_enabled, es.delivery_retry_attempts)
s = es.subscriptions
sub = s.create({'Destination': 'http://127.0.0.1:9/sushy', 'Context': 'sushy', 'Protocol': 'Redfish'})
s.refresh()
print('members', ','.join(s.members_identities))
`;
    const r = await run('/usr/bin/python3', ['-c', py, t.redfishUrl, ADMIN.username, ADMIN.password]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.contain('enabled True 3');
    expect(r.out).to.contain('members /redfish/v1/EventService/Subscriptions/1');
    expect(t.agent.events.subscriptions.get('1')).to.deep.include({ destination: 'http://127.0.0.1:9/sushy', context: 'sushy' });
  });

  devIt('Tacklebox rf_event_service.py info, subscribe and unsubscribe (development check: TACKLEBOX_DIR)', async function () {
    const script = `${TACKLEBOX ?? ''}/scripts/rf_event_service.py`;
    expect(existsSync(script), script).to.equal(true);
    const tb = (...args: string[]) =>
      run('env', [`PYTHONPATH=${TACKLEBOX_PY}`, '/usr/bin/python3', script, '-u', ADMIN.username, '-p', ADMIN.password, '-r', t.redfishUrl, ...args]);
    const info = await tb('info');
    expect(info.code, info.out).to.equal(0);
    expect(info.out).to.match(/SSE URI: \/redfish\/v1\/EventService\/SSE/);
    expect(info.out).to.match(/Registries: ResourceEvent, TaskEvent, Base/);
    const sub = await tb('subscribe', '--destination', 'http://127.0.0.1:9/tacklebox');
    expect(sub.code, sub.out).to.equal(0);
    expect(sub.out).to.contain("Created subscription '/redfish/v1/EventService/Subscriptions/1'");
    const un = await tb('unsubscribe', '--id', '1');
    expect(un.code, un.out).to.equal(0);
    expect(t.agent.events.subscriptions.list()).to.deep.equal([]);
  });
});
