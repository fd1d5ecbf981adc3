/**
 * OpenIPMI's ipmi_sim as a baseline BMC for the benchmarks (bench/ipmi-exec.ts, bench/sol-throughput.ts):
 * one LAN channel on loopback, every v1.5 auth type allowed, user 2 `admin` with the given password,
 * optionally a SOL serial port on a TCP address. Writes its lan.conf and emu.cmd into `dir`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface IpmiSimOptions {
  dir: string;
  /** the BMC's name in lan.conf */
  name: string;
  /** UDP port of the LAN channel on 127.0.0.1 */
  port: number;
  password: string;
  /** TCP port on 127.0.0.1 that ipmi_sim connects its SOL serial line to */
  solSerialPort?: number;
}

export function spawnIpmiSim(o: IpmiSimOptions): ChildProcess {
  writeFileSync(
    join(o.dir, 'lan.conf'),
    [
      `name "${o.name}"`,
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr 127.0.0.1 ${o.port}`,
      '    priv_limit admin',
      '    allowed_auths_callback none md2 md5 straight',
      '    allowed_auths_user none md2 md5 straight',
      '    allowed_auths_operator none md2 md5 straight',
      '    allowed_auths_admin none md2 md5 straight',
      '    guid a123456789abcdefa123456789abcdef',
      '  endlan',
      ...(o.solSerialPort !== undefined ? [`  sol "tcp:127.0.0.1:${o.solSerialPort}" 115200`] : []),
      `  user 2 true "admin" "${o.password}" admin 10 none md2 md5 straight`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(o.dir, 'emu.cmd'), 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n');
  return spawn('ipmi_sim', ['-c', join(o.dir, 'lan.conf'), '-f', join(o.dir, 'emu.cmd'), '-s', o.dir, '-n'], { stdio: 'ignore' });
}
