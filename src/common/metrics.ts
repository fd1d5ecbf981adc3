/**
 * What the protocol layers (src/ipmi, src/redfish) need of the agent's metrics, kept below them so
 * they never import src/agent: a meter attached to the machine they serve (like the event hub),
 * reached through that machine. The agent's prom-client registry (src/agent/metrics.ts,
 * AgentMetrics) is the one implementation; with none attached every call here does nothing.
 */

/** Counts answers and reads session counts at scrape time */
export interface ProtocolMeter {
  /** One answer: protocol, operation (IPMI command name or Redfish operationId), status, latency */
  observe(protocol: string, operation: string, status: string, seconds: number): void;
  /** How to count a protocol's open sessions when scraped */
  setSessionCounter(protocol: string, count: () => number): void;
}

const byMachine = new WeakMap<object, ProtocolMeter>();

export function attachMetrics(machine: object, metrics: ProtocolMeter): void {
  byMachine.set(machine, metrics);
}

export function metricsOf(machine: object): ProtocolMeter | undefined {
  return byMachine.get(machine);
}

/** One Redfish response (called by the app for every request). */
export function observeRequest(machine: object, protocol: 'redfish' | 'ipmi', operation: string, status: number | string, seconds: number): void {
  byMachine.get(machine)?.observe(protocol, operation, String(status), seconds);
}

/** Count a protocol's open sessions at scrape time. */
export function countSessions(machine: object, protocol: 'redfish' | 'ipmi', count: () => number): void {
  byMachine.get(machine)?.setSessionCounter(protocol, count);
}

interface MeteredSpec {
  name: string;
  handler: (ctx: never) => unknown;
}

/**
 * Wrap every handler of an IPMI command table so each answer is counted with its completion code
 * and latency (the engine calls this once over its table). No metrics attached: unchanged.
 */
/** The status label of every completion code, made once rather than per answer. */
const CC_LABELS = Array.from({ length: 256 }, (_, cc) => `0x${cc.toString(16).padStart(2, '0')}`);

export function instrumentIpmiCommands<S extends MeteredSpec>(table: Map<number, S>, machine: object): void {
  const m = byMachine.get(machine);
  if (!m) return;
  for (const [key, spec] of table) {
    const inner = spec.handler as (ctx: unknown) => unknown;
    const done = (started: bigint, cc: number): void => m.observe('ipmi', spec.name, CC_LABELS[cc & 0xff]!, Number(process.hrtime.bigint() - started) / 1e9);
    const handler = (ctx: unknown): unknown => {
      const started = process.hrtime.bigint();
      let r: unknown;
      try {
        r = inner(ctx);
      } catch (e) {
        done(started, 0xff);
        throw e;
      }
      if (r && typeof (r as PromiseLike<unknown>).then === 'function') {
        return Promise.resolve(r).then(
          (v) => {
            done(started, (v as { cc?: number } | undefined)?.cc ?? 0);
            return v;
          },
          (e: unknown) => {
            done(started, 0xff);
            throw e;
          },
        );
      }
      done(started, (r as { cc?: number } | undefined)?.cc ?? 0);
      return r;
    };
    table.set(key, { ...spec, handler } as S);
  }
}
