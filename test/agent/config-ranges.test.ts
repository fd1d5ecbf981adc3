import { expect } from 'chai';
import {
  ConfigError,
  IPMI_SESSION_TIMEOUT_RANGE,
  REDFISH_SESSION_TIMEOUT_RANGE,
  parseIntInRange,
} from '../../src/agent/config.js';
import { SESSION_TIMEOUT_LIMITS } from '../../src/redfish/core/sessions.js';
import { ADMIN, startTestAgent } from '../helpers/agent.js';

describe('agent configuration: ranged flags', () => {
  it('--redfish-session-timeout takes the range SessionService PATCH enforces', () => {
    expect(REDFISH_SESSION_TIMEOUT_RANGE, 'one definition, not a copy').to.equal(SESSION_TIMEOUT_LIMITS);
    const range = REDFISH_SESSION_TIMEOUT_RANGE;
    expect(parseIntInRange('1800', '--redfish-session-timeout', range)).to.equal(1800);
    expect(parseIntInRange('30', '--redfish-session-timeout', range)).to.equal(30);
    expect(parseIntInRange('86400', '--redfish-session-timeout', range)).to.equal(86400);
    for (const bad of ['1', '29', '86401', '0', '-5', '30.5', '', ' ', 'abc', '1e9']) {
      expect(() => parseIntInRange(bad, '--redfish-session-timeout', range), bad).to.throw(ConfigError, /--redfish-session-timeout must be a whole number from 30 to 86400/);
    }
  });

  it('--ipmi-session-timeout refuses 0 (every session would end at once) and fractions', () => {
    const range = IPMI_SESSION_TIMEOUT_RANGE;
    expect(parseIntInRange('60', '--ipmi-session-timeout', range)).to.equal(60);
    expect(parseIntInRange('1', '--ipmi-session-timeout', range)).to.equal(1);
    for (const bad of ['0', '0.5', '86401', '-1', '']) {
      expect(() => parseIntInRange(bad, '--ipmi-session-timeout', range), bad).to.throw(ConfigError, /--ipmi-session-timeout must be a whole number from 1 to 86400/);
    }
  });

  it('the flag and PATCH /redfish/v1/SessionService accept exactly the same SessionTimeout values', async () => {
    const t = await startTestAgent({ ipmi: false });
    try {
      const auth = `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}`;
      for (const v of [0, 1, 29, 30, 31, 1800, 86_399, 86_400, 86_401, 30.5, -30]) {
        const r = await fetch(`${t.redfishUrl}/redfish/v1/SessionService`, {
          method: 'PATCH',
          headers: { Authorization: auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({ SessionTimeout: v }),
        });
        await r.arrayBuffer();
        expect(r.status, `PATCH SessionTimeout ${v}`).to.be.oneOf([200, 204, 400]);
        let cli = true;
        try {
          parseIntInRange(String(v), '--redfish-session-timeout', REDFISH_SESSION_TIMEOUT_RANGE);
        } catch (e) {
          expect(e).to.be.instanceOf(ConfigError);
          cli = false;
        }
        expect(cli, `--redfish-session-timeout ${v} accepted by the flag iff by PATCH (${r.status})`).to.equal(r.status !== 400);
      }
    } finally {
      await t.close();
    }
  });
});
