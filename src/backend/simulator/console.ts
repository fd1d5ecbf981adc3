/**
 * The simulator's serial console: a short boot log on every boot (power on, reset, cycle), then a
 * login prompt that echoes what is typed and, on Enter, prints the line back. Powered off, the
 * console is offline (nothing to read, input refused), as a real serial line of a dead machine.
 */
import { ConsoleHub, type ConsoleHubOptions } from '../console.js';
import type { ConsoleStream, Machine, MachineEvent } from '../types.js';

export interface SimulatedConsoleOptions {
  hostName: string;
  ringBytes?: ConsoleHubOptions['ringBytes'];
  inputLimit?: ConsoleHubOptions['inputLimit'];
}

/** The lines printed on each boot, before the prompt. */
export function bootLog(hostName: string): string {
  return [
    'SeaBIOS (version simulated-1.0)',
    'Booting from Hard Disk...',
    '[    0.000000] Linux version 6.1.0-sim (kubevirtbmc simulator)',
    '[    0.512000] Run /sbin/init as init process',
    '[  OK  ] Reached target Multi-User System.',
    '',
    `Simulated Linux ${hostName} ttyS0`,
    '',
  ].join('\r\n');
}

export class SimulatedConsole {
  readonly hub: ConsoleHub;
  /** Bytes the guest received, in order (tests read it). */
  readonly received: Buffer[] = [];
  breaks = 0;
  /** Echo typed bytes and answer lines (the "login prompt"); off = a sink that only records. */
  interactive = true;
  private line = '';
  private lastCR = false;
  private readonly prompt: string;
  private readonly unsubscribe: () => void;

  constructor(machine: Pick<Machine, 'on'>, initiallyOn: boolean, private readonly opts: SimulatedConsoleOptions) {
    this.prompt = `${opts.hostName} login: `;
    this.hub = new ConsoleHub({
      ringBytes: opts.ringBytes,
      inputLimit: opts.inputLimit,
      initialState: initiallyOn ? 'connected' : 'offline',
      sink: {
        write: (data) => {
          this.input(data);
          return true;
        },
        sendBreak: () => {
          this.breaks++;
        },
      },
    });
    this.unsubscribe = machine.on((e) => this.onEvent(e));
    if (initiallyOn) this.print(this.prompt);
  }

  open(): ConsoleStream {
    return this.hub.open();
  }

  /** The guest prints something (tests and the bench use it to produce output). */
  print(text: string | Buffer): void {
    this.hub.output(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  }

  close(): void {
    this.unsubscribe();
    this.hub.setState('offline');
  }

  private onEvent(e: MachineEvent): void {
    if (e.type === 'power') {
      if (e.to === 'Off') this.hub.setState('offline');
    } else if (e.type === 'booted') {
      this.line = '';
      this.hub.setState('connected');
      this.print(bootLog(this.opts.hostName) + '\r\n' + this.prompt);
    }
  }

  private input(data: Buffer): void {
    this.received.push(data);
    if (!this.interactive) return;
    let echo = '';
    for (const ch of data.toString('latin1')) {
      const cr = this.lastCR;
      this.lastCR = ch === '\r';
      if (ch === '\r' || ch === '\n') {
        if (ch === '\n' && cr) continue;
        echo += `\r\nyou typed: ${this.line}\r\n${this.prompt}`;
        this.line = '';
      } else if (ch === '\x7f' || ch === '\b') {
        if (this.line.length > 0) {
          this.line = this.line.slice(0, -1);
          echo += '\b \b';
        }
      } else {
        this.line += ch;
        echo += ch;
      }
    }
    if (echo) this.print(echo);
  }
}
