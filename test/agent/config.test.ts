import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parsePort, parsePositiveInt, resolveUsers } from '../../src/agent/config.js';

describe('agent configuration', () => {
  it('requires a password somewhere', () => {
    expect(() => resolveUsers({ env: {} })).to.throw(ConfigError, /no BMC password/);
    expect(() => resolveUsers({ env: { BMC_PASSWORD: '' } })).to.throw(ConfigError);
  });

  it('takes credentials from env, and flags win over env', () => {
    expect(resolveUsers({ env: { BMC_USERNAME: 'root', BMC_PASSWORD: 'envpw' } })).to.deep.equal([
      { username: 'root', password: 'envpw', role: 'Administrator' },
    ]);
    expect(
      resolveUsers({ flagUsername: 'ops', flagPassword: 'flagpw', env: { BMC_USERNAME: 'root', BMC_PASSWORD: 'envpw' } }),
    ).to.deep.equal([{ username: 'ops', password: 'flagpw', role: 'Administrator' }]);
    expect(resolveUsers({ flagPassword: 'x', env: {} })[0]!.username).to.equal('admin');
  });

  it('enforces IPMI length limits', () => {
    expect(() => resolveUsers({ flagUsername: 'a'.repeat(17), flagPassword: 'x', env: {} })).to.throw(/1\.\.16 bytes/);
    expect(() => resolveUsers({ flagPassword: 'p'.repeat(21), env: {} })).to.throw(/at most 20 bytes/);
  });

  it('adds users from a users file and validates them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbmc-users-'));
    const ok = join(dir, 'ok.yaml');
    writeFileSync(ok, '- {username: viewer, password: v, role: ReadOnly}\n- {username: op, password: o, role: Operator}\n');
    const users = resolveUsers({ flagPassword: 'x', env: {}, usersFile: ok });
    expect(users.map((u) => `${u.username}:${u.role}`)).to.deep.equal(['admin:Administrator', 'viewer:ReadOnly', 'op:Operator']);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, '- {username: viewer, password: v, role: God}\n');
    expect(() => resolveUsers({ flagPassword: 'x', env: {}, usersFile: bad })).to.throw(ConfigError, /role must be/);
    writeFileSync(bad, '- {username: admin, password: v}\n');
    expect(() => resolveUsers({ flagPassword: 'x', env: {}, usersFile: bad })).to.throw(ConfigError, /duplicate/);
    writeFileSync(bad, 'username: x\n');
    expect(() => resolveUsers({ flagPassword: 'x', env: {}, usersFile: bad })).to.throw(ConfigError, /list/);
    expect(() => resolveUsers({ flagPassword: 'x', env: {}, usersFile: join(dir, 'missing') })).to.throw(ConfigError, /cannot read/);
  });

  it('parses ports', () => {
    expect(parsePort('623', 'p')).to.equal(623);
    expect(parsePort('0', 'p')).to.equal(0);
    expect(() => parsePort('70000', 'p')).to.throw(ConfigError);
    expect(() => parsePort('abc', 'p')).to.throw(ConfigError);
  });

  it('parses counts as whole numbers of at least 1', () => {
    expect(parsePositiveInt('32', 'n')).to.equal(32);
    expect(() => parsePositiveInt('1.5', 'n')).to.throw(ConfigError, /whole number/);
    expect(() => parsePositiveInt('0', 'n')).to.throw(ConfigError);
    expect(() => parsePositiveInt('x', 'n')).to.throw(ConfigError);
  });
});
