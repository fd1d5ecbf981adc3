import { expect } from 'chai';
import type { BootOverride, Capabilities } from '../../src/backend/types.js';
import {
  bootFlagsToOverride,
  decodeBootFlags,
  deviceToTarget,
  overrideToBootFlags,
  targetToDevice,
} from '../../src/ipmi/commands/boot-options.js';

const ALL: Capabilities = {
  powerActions: ['on'],
  bootTargets: ['none', 'pxe', 'hdd', 'cd', 'usb', 'floppy', 'biosSetup', 'diags', 'uefiHttp'],
  bootModes: ['UEFI', 'Legacy'],
};
const NO_FLOPPY: Capabilities = { ...ALL, bootTargets: ['none', 'pxe', 'hdd', 'cd'], bootModes: ['UEFI'] };

const b = (...xs: number[]) => Buffer.from(xs);

describe('IPMI boot flags (parameter 5) codec', () => {
  it('decodes valid/persistent/EFI bits and the device selector', () => {
    expect(decodeBootFlags(b(0xe0, 0x14, 0, 0, 0))).to.deep.equal({ valid: true, persistent: true, efi: true, device: 0x14 });
    expect(decodeBootFlags(b(0x80, 0x44, 0, 0, 0))).to.deep.equal({ valid: true, persistent: false, efi: false, device: 0x04 });
    expect(decodeBootFlags(b(0x00, 0x00, 0, 0, 0))).to.deep.equal({ valid: false, persistent: false, efi: false, device: 0 });
  });

  it('maps every ipmitool bootdev selector to a target and back', () => {
    const table: Array<[number, string]> = [
      [0x00, 'none'],
      [0x04, 'pxe'],
      [0x08, 'hdd'],
      [0x0c, 'hdd'],
      [0x10, 'diags'],
      [0x14, 'cd'],
      [0x18, 'biosSetup'],
      [0x3c, 'floppy'],
    ];
    for (const [sel, target] of table) expect(deviceToTarget(sel), `0x${sel.toString(16)}`).to.equal(target);
    for (const sel of [0x28, 0x30, 0x34, 0x38]) expect(deviceToTarget(sel)).to.equal(undefined);
    expect(targetToDevice('pxe')).to.equal(0x04);
    expect(targetToDevice('hdd')).to.equal(0x08);
    expect(targetToDevice('cd')).to.equal(0x14);
    expect(targetToDevice('biosSetup')).to.equal(0x18);
    expect(targetToDevice('floppy')).to.equal(0x3c);
    expect(targetToDevice('diags')).to.equal(0x10);
    expect(targetToDevice('none')).to.equal(0x00);
  });

  it('valid+persistent → continuous, valid → once, not valid → disabled; EFI bit → mode', () => {
    expect(bootFlagsToOverride(b(0xe0, 0x04, 0, 0, 0), ALL)).to.deep.equal({
      ok: true,
      change: { enabled: 'continuous', target: 'pxe', mode: 'UEFI' },
    });
    expect(bootFlagsToOverride(b(0x80, 0x08, 0, 0, 0), ALL)).to.deep.equal({
      ok: true,
      change: { enabled: 'once', target: 'hdd', mode: 'Legacy' },
    });
    expect(bootFlagsToOverride(b(0x00, 0x00, 0, 0, 0), ALL)).to.deep.equal({
      ok: true,
      change: { enabled: 'disabled', target: 'none', mode: 'Legacy' },
    });
  });

  it('refuses devices the machine cannot boot and reserved selectors, only when valid', () => {
    const r = bootFlagsToOverride(b(0x80, 0x3c, 0, 0, 0), NO_FLOPPY);
    expect(r.ok).to.equal(false);
    expect(bootFlagsToOverride(b(0x80, 0x28, 0, 0, 0), ALL).ok).to.equal(false);
    // Clearing the flags with an unsupported device still clears them, leaving the target alone.
    expect(bootFlagsToOverride(b(0x00, 0x3c, 0, 0, 0), NO_FLOPPY)).to.deep.equal({ ok: true, change: { enabled: 'disabled' } });
  });

  it('leaves the mode alone when the machine lacks the requested boot type', () => {
    expect(bootFlagsToOverride(b(0x80, 0x04, 0, 0, 0), NO_FLOPPY)).to.deep.equal({
      ok: true,
      change: { enabled: 'once', target: 'pxe' },
    });
  });

  it('rejects a wrong length', () => {
    expect(bootFlagsToOverride(b(0x80, 0x04), ALL).ok).to.equal(false);
  });

  it('reads back what was written, including bits it cannot map', () => {
    const written = b(0xe0, 0x04 | 0x40 | 0x02, 0x85, 0x09, 0x03); // keyboard lock, screen blank, byte 3-5
    const r = bootFlagsToOverride(written, ALL);
    if (!r.ok) throw new Error(r.reason);
    const boot: BootOverride = { target: 'none', enabled: 'disabled', mode: 'UEFI', ...r.change };
    expect(overrideToBootFlags(boot, written).toString('hex')).to.equal(written.toString('hex'));
  });

  it('keeps the written selector when it names the same target (safe mode, remote CD)', () => {
    const safe = b(0x80, 0x0c, 0, 0, 0);
    expect(overrideToBootFlags({ target: 'hdd', enabled: 'once', mode: 'Legacy' }, safe).toString('hex')).to.equal('800c000000');
    const remoteCd = b(0xa0, 0x20, 0, 0, 0);
    expect(overrideToBootFlags({ target: 'cd', enabled: 'once', mode: 'UEFI' }, remoteCd).toString('hex')).to.equal('a020000000');
  });

  it('follows the machine: a consumed once override reads back invalid with no device', () => {
    const written = b(0x80, 0x44, 0, 0, 0);
    const after: BootOverride = { target: 'none', enabled: 'disabled', mode: 'Legacy' };
    expect(overrideToBootFlags(after, written).toString('hex')).to.equal('0040000000');
  });

  it('follows the machine: a Redfish change shows its own target and mode', () => {
    const written = b(0x80, 0x04, 0, 0, 0);
    const redfish: BootOverride = { target: 'cd', enabled: 'continuous', mode: 'UEFI' };
    expect(overrideToBootFlags(redfish, written).toString('hex')).to.equal('e014000000');
    expect(overrideToBootFlags({ target: 'uefiHttp', enabled: 'once', mode: 'UEFI' }, Buffer.alloc(5)).toString('hex')).to.equal(
      'a004000000',
    );
  });
});
