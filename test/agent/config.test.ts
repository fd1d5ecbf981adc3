import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseLockoutPolicy, parsePort, parsePositiveInt, resolveUsers, scrubbedCommandLine } from '../../src/agent/config.js';

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

  it('reads the password from --password-file (one trailing newline dropped), exclusive with --password, never echoing it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbmc-pw-'));
    const f = join(dir, 'pw');
    writeFileSync(f, 'file-Secret-1\n');
    expect(resolveUsers({ passwordFile: f, env: { BMC_PASSWORD: 'envpw' } })[0]!.password).to.equal('file-Secret-1');
    writeFileSync(f, 'crlf-pw\r\n');
    expect(resolveUsers({ passwordFile: f, env: {} })[0]!.password).to.equal('crlf-pw');
    writeFileSync(f, 'no-newline');
    expect(resolveUsers({ passwordFile: f, env: {} })[0]!.password).to.equal('no-newline');
    expect(() => resolveUsers({ passwordFile: f, flagPassword: 'x', env: {} })).to.throw(ConfigError, /exclusive/);
    writeFileSync(f, '\n');
    expect(() => resolveUsers({ passwordFile: f, env: { BMC_PASSWORD: 'envpw' } })).to.throw(ConfigError, /empty/);
    writeFileSync(f, 'two\nlines-Secret\n');
    let err: unknown;
    try {
      resolveUsers({ passwordFile: f, env: {} });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/one line/).and.not.contain('lines-Secret');
    expect(() => resolveUsers({ passwordFile: join(dir, 'missing'), env: {} })).to.throw(ConfigError, /cannot read password file .*ENOENT/);
    writeFileSync(f, 'p'.repeat(21));
    expect(() => resolveUsers({ passwordFile: f, env: {} })).to.throw(/at most 20 bytes/);
  });

  it('parses the lockout flags and refuses out-of-range values naming the flag', () => {
    expect(parseLockoutPolicy({ threshold: '5', duration: '30', resetAfter: '30' })).to.deep.equal({ threshold: 5, durationSeconds: 30, counterResetAfterSeconds: 30 });
    expect(parseLockoutPolicy({ threshold: '0', duration: '1', resetAfter: '1' }).threshold).to.equal(0);
    expect(() => parseLockoutPolicy({ threshold: '-1', duration: '30', resetAfter: '30' })).to.throw(ConfigError, /--account-lockout-threshold must be a whole number in 0\.\.1000/);
    expect(() => parseLockoutPolicy({ threshold: '5', duration: 'x', resetAfter: '30' })).to.throw(ConfigError, /--account-lockout-duration/);
    expect(() => parseLockoutPolicy({ threshold: '5', duration: '30', resetAfter: '31' })).to.throw(ConfigError, /--account-lockout-reset-after must not exceed --account-lockout-duration/);
  });

  it('scrubs the --password value from the command line it shows', () => {
    expect(scrubbedCommandLine(['node', 'virtbmc', '--password', 'pw1', '--simulate'])).to.equal('node virtbmc --password *** --simulate');
    expect(scrubbedCommandLine(['node', 'virtbmc', '--password=pw2'])).to.equal('node virtbmc --password=***');
    expect(scrubbedCommandLine(['node', 'virtbmc', '--password-file', '/run/pw'])).to.equal('node virtbmc --password-file /run/pw');
  });
});
