/**
 * Which Secret an agent serves Redfish HTTPS with, by spec.redfish.tls.mode (src/controller/tls.ts
 * does the work; these names are shared with the pure reconcile logic).
 */
import type { RedfishTLSMode, VirtualMachineBMC } from './api/types.js';

export function tlsMode(vmbmc: VirtualMachineBMC): RedfishTLSMode {
  const t = vmbmc.spec.redfish?.tls;
  // a secretRef without a mode is the pre-mode API (spec.redfish.tls.secretRef alone): Secret
  return t?.mode ?? (t?.secretRef?.name ? 'Secret' : 'Auto');
}

export const mintedSecretName = (agentName: string): string => `${agentName}-tls`;
export const certManagerSecretName = (agentName: string): string => `${agentName}-cm-tls`;

/**
 * The Secret the agent's Deployment mounts, without asking the cluster (Auto assumes the minted
 * one; the controller passes the real choice to desiredObjects).
 */
export function defaultTlsSecretName(vmbmc: VirtualMachineBMC, agentName: string): string | undefined {
  switch (tlsMode(vmbmc)) {
    case 'Disabled':
      return undefined;
    case 'Secret':
      return vmbmc.spec.redfish?.tls?.secretRef?.name;
    default:
      return mintedSecretName(agentName);
  }
}

