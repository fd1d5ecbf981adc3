import { expect } from 'chai';
import {
  ConfigError,
  IPMI_SESSION_TIMEOUT_RANGE,
  REDFISH_SESSION_TIMEOUT_RANGE,
  parseIntInRange,
} from '../../src/agent/config.js';
import { MAX_SESSION_TIMEOUT_SECONDS, MIN_SESSION_TIMEOUT_SECONDS } from '../../src/redfish/core/sessions.js';

describe('agent configuration: ranged flags', () => {
  it('--redfish-session-timeout takes the range SessionService PATCH enforces', () => {
    expect(REDFISH_SESSION_TIMEOUT_RANGE).to.deep.equal([MIN_SESSION_TIMEOUT_SECONDS, MAX_SESSION_TIMEOUT_SECONDS]);
    const [min, max] = REDFISH_SESSION_TIMEOUT_RANGE;
    expect(parseIntInRange('1800', '--redfish-session-timeout', min, max)).to.equal(1800);
    expect(parseIntInRange('30', '--redfish-session-timeout', min, max)).to.equal(30);
    expect(parseIntInRange('86400', '--redfish-session-timeout', min, max)).to.equal(86400);
    for (const bad of ['1', '29', '86401', '0', '-5', '30.5', '', ' ', 'abc', '1e9']) {
      expect(() => parseIntInRange(bad, '--redfish-session-timeout', min, max), bad).to.throw(ConfigError, /--redfish-session-timeout must be a whole number from 30 to 86400/);
    }
  });

  it('--ipmi-session-timeout refuses 0 (every session would end at once) and fractions', () => {
    const [min, max] = IPMI_SESSION_TIMEOUT_RANGE;
    expect(parseIntInRange('60', '--ipmi-session-timeout', min, max)).to.equal(60);
    expect(parseIntInRange('1', '--ipmi-session-timeout', min, max)).to.equal(1);
    for (const bad of ['0', '0.5', '86401', '-1', '']) {
      expect(() => parseIntInRange(bad, '--ipmi-session-timeout', min, max), bad).to.throw(ConfigError, /--ipmi-session-timeout must be a whole number from 1 to 86400/);
    }
  });
});
