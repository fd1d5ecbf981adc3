/**
 * KubeVirt feature gates as the emulator models them (KubeVirt v1.9).
 *
 * Upstream pkg/virt-config/featuregate/feature-gates.go IsEnabled: a GA gate is always on; a gate
 * listed in developerConfiguration.featureGates is on; one listed in disabledFeatureGates is off;
 * otherwise a Beta gate is on and every other state (Alpha, Deprecated, ...) is off. States from
 * pkg/virt-config/featuregate/active.go and inactive.go at v1.9.0.
 */
export type GateState = 'Alpha' | 'Beta' | 'GA' | 'Deprecated';

/** The gates the emulator acts on, with their v1.9.0 state. */
export const GATE_STATES: Record<string, GateState> = {
  // active.go: RegisterFeatureGate(FeatureGate{Name: DeclarativeHotplugVolumesGate, State: Beta})
  DeclarativeHotplugVolumes: 'Beta',
  // active.go: RegisterFeatureGate(FeatureGate{Name: RebootPolicy, State: Beta}) (Alpha in v1.8)
  RebootPolicy: 'Beta',
  // inactive.go: HotplugVolumes deprecated since v1.9.0, replaced by DeclarativeHotplugVolumes
  HotplugVolumes: 'Deprecated',
};

export interface FeatureGateConfig {
  /** KubeVirt CR spec.configuration.developerConfiguration.featureGates */
  featureGates?: string[];
  /** KubeVirt CR spec.configuration.developerConfiguration.disabledFeatureGates */
  disabledFeatureGates?: string[];
}

export function featureGateEnabled(gate: string, cfg: FeatureGateConfig = {}): boolean {
  const state = GATE_STATES[gate];
  if (state === undefined) return false;
  if (state === 'GA') return true;
  if (cfg.featureGates?.includes(gate)) return true;
  if (cfg.disabledFeatureGates?.includes(gate)) return false;
  return state === 'Beta';
}
