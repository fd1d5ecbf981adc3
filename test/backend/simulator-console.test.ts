/**
 * The simulator's serial console: a boot log on every boot, an echoing login prompt, offline while
 * powered off, a bounded ring of recent output for viewers that attach later.
 */
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import type { ConsoleEvent, ConsoleStream } from '../../src/backend/types.js';

function watch(s: ConsoleStream): { text: () => string; events: ConsoleEvent[] } {
  const events: ConsoleEvent[] = [];
  s.on((e) => events.push(e));
  return {
    events,
    text: () =>
      Buffer.concat(events.flatMap((e) => (e.type === 'data' ? [e.data] : []))).toString('latin1'),
  };
}

describe('simulator serial console', () => {
  let sim: SimulatedMachine;
  beforeEach(() => {
    sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
  });
  afterEach(() => sim.close());

  it('is offline while off: nothing to read, input refused', () => {
    const s = sim.openConsole();
    expect(s.state).to.equal('offline');
    expect(s.backlog.length).to.equal(0);
    expect(s.write(Buffer.from('hello'))).to.equal(0);
    expect(sim.serialConsole.received).to.have.length(0);
  });

  it('prints the boot log and the prompt on power on, and again after a reset', async () => {
    const s = sim.openConsole();
    const w = watch(s);
    await sim.power('on');
    expect(s.state).to.equal('connected');
    expect(w.text()).to.match(/SeaBIOS[\s\S]*Booting from Hard Disk[\s\S]*sim-vm login: $/);
    await sim.power('forceRestart');
    expect(w.text().match(/Booting from Hard Disk/g)).to.have.length(2);
    expect(w.events.filter((e) => e.type === 'state').map((e) => (e as { state: string }).state)).to.deep.equal(['connected']);
  });

  it('echoes what is typed and answers a line on Enter (CR, LF or CRLF), backspace erases', async () => {
    await sim.power('on');
    const s = sim.openConsole();
    const w = watch(s);
    expect(s.write(Buffer.from('roox\x7ft\r\n'))).to.equal(8);
    expect(w.text()).to.equal('roox\b \bt\r\nyou typed: root\r\nsim-vm login: ');
    s.write(Buffer.from('a\n'));
    expect(w.text()).to.match(/you typed: a\r\nsim-vm login: $/);
    expect(Buffer.concat(sim.serialConsole.received).toString()).to.equal('roox\x7ft\r\na\n');
  });

  it('goes offline on power off and drops queued input; a viewer attaching later sees the recent output', async () => {
    await sim.power('on');
    const s = sim.openConsole();
    await sim.power('forceOff');
    expect(s.state).to.equal('offline');
    expect(s.write(Buffer.from('x'))).to.equal(0);
    const later = sim.openConsole();
    expect(later.backlog.toString('latin1')).to.include('sim-vm login: ');
    s.close();
    later.close();
  });

  it('keeps at most the ring size of output', () => {
    const small = new SimulatedMachine({ initialPower: 'On' });
    try {
      const big = Buffer.alloc(200 * 1024, 0x61);
      small.serialConsole.print(big);
      expect(small.openConsole().backlog.length).to.equal(64 * 1024);
    } finally {
      void small.close();
    }
  });

  it('sends a break to the guest only while connected', async () => {
    const s = sim.openConsole();
    s.sendBreak();
    expect(sim.serialConsole.breaks).to.equal(0);
    await sim.power('on');
    s.sendBreak();
    expect(sim.serialConsole.breaks).to.equal(1);
  });
});
