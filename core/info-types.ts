/**
 * The shapes of `/system/info`: a provider describes itself, and the gateway wraps that with its
 * own version and the machine's architecture.
 */

/** A component's version. Key names are OpenFaaS's, snake case included. */
export interface VersionInfo {
  commit_message?: string;
  sha: string;
  release: string;
}

/** What a provider's `/system/info` returns (`InfoRequest` in faas-provider). */
export interface ProviderInfo {
  /** The implementation, e.g. `faas-netes` or `fnbus-process`. */
  provider: string;
  version: VersionInfo;
  /** The orchestrator underneath, e.g. `kubernetes`, `swarm`, `process`. */
  orchestration: string;
}

/** What the gateway's `/system/info` returns. */
export interface GatewayInfo {
  provider: ProviderInfo;
  /** The gateway's own version. */
  version: VersionInfo;
  /** The gateway machine's architecture, e.g. `x86_64`. */
  arch: string;
}
