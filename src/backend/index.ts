export * from './types.js';
export { SimulatedMachine, stableUuid, type SimulatorOptions, type BootRecord } from './simulator/simulator.js';
