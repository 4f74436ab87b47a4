import type {
  FunctionDeployment,
  FunctionNamespace,
  FunctionStatus,
  Secret,
} from './function-types.js';
import type { ProviderInfo } from './info-types.js';
import type { LogMessage, LogRequest } from './log-types.js';

/**
 * Secrets of one provider. Optional as a whole: a provider has all of it or none, and the gateway
 * answers 501 on `/system/secrets` when it is absent. `signal` as on Provider.
 */
export interface SecretStore {
  /** Names (and namespaces) only: values never leave the store. */
  list(namespace?: string, signal?: AbortSignal): Promise<Secret[]>;
  /** ConflictError if it exists. */
  create(secret: Secret, signal?: AbortSignal): Promise<void>;
  /** NotFoundError if it does not exist. */
  update(secret: Secret, signal?: AbortSignal): Promise<void>;
  /** NotFoundError if it does not exist. */
  remove(name: string, namespace?: string, signal?: AbortSignal): Promise<void>;
}

/**
 * Namespaces a provider can create, change and remove (`/system/namespace/{name}`). Optional as a
 * whole: without it the gateway answers 501 there, as faas-provider does. `signal` as on Provider.
 */
export interface NamespaceStore {
  /** undefined when there is no such namespace. */
  get(name: string, signal?: AbortSignal): Promise<FunctionNamespace | undefined>;
  /** ConflictError if it exists; ValidationError for a name that is not a DNS-1123 label. */
  create(namespace: FunctionNamespace, signal?: AbortSignal): Promise<void>;
  /** Replaces its labels and annotations; NotFoundError if it does not exist. */
  update(namespace: FunctionNamespace, signal?: AbortSignal): Promise<void>;
  /** NotFoundError if it does not exist; ConflictError while it holds functions, or is the default. */
  remove(name: string, signal?: AbortSignal): Promise<void>;
}

/**
 * One orchestrator: runs functions' replicas and says where a ready one listens. The gateway
 * takes a Provider and never knows which it has; one contract test suite runs against all of
 * them (process, swarm, kubernetes).
 *
 * `namespace` absent means the provider's default namespace. Methods naming a function that does
 * not exist reject with NotFoundError. deploy and update get a spec normalizeDeployment made
 * (function-deployment.ts: the gateway checks it before any provider sees it); what only the
 * provider can tell is wrong (nothing it can run, a namespace it lacks) rejects with
 * ValidationError. A capability the backend lacks is absent, never a stub, and the
 * gateway answers 501 for it.
 *
 * Every method takes an optional last `signal`, as `logs` does: a provider that waits on
 * something remote stops waiting when it aborts and rejects with UnavailableError (whether the
 * remote carried the change out is then unknown); one whose calls are local and short may finish
 * regardless. A remote provider also bounds each call itself, so no call waits forever.
 */
export interface Provider {
  /** For `/system/info`. */
  info(signal?: AbortSignal): Promise<ProviderInfo>;
  /** Creates the function; ConflictError if it exists. Returns once accepted, not once ready. */
  deploy(spec: FunctionDeployment, signal?: AbortSignal): Promise<void>;
  /** Replaces an existing function's spec; keeps its replica count. */
  update(spec: FunctionDeployment, signal?: AbortSignal): Promise<void>;
  remove(name: string, namespace?: string, signal?: AbortSignal): Promise<void>;
  list(namespace?: string, signal?: AbortSignal): Promise<FunctionStatus[]>;
  /** undefined when there is no such function: not finding one is an answer here. */
  get(name: string, namespace?: string, signal?: AbortSignal): Promise<FunctionStatus | undefined>;
  /** Sets the desired replicas; 0 is allowed (scale to zero). Returns before they are ready. */
  scale(name: string, replicas: number, namespace?: string, signal?: AbortSignal): Promise<void>;
  /**
   * The base URL of one ready replica, chosen by the provider (so it can spread load), or of a
   * proxy that reaches one (a faas-provider's `/function/<name>/`): a call's path is appended to
   * the URL's own path. UnavailableError when the function exists but has no ready replica.
   */
  resolve(name: string, namespace?: string, signal?: AbortSignal): Promise<URL>;
  /** Lines of the function's logs; the stream ends when `signal` aborts or, unless following, at the end. */
  logs?(req: LogRequest, signal: AbortSignal): AsyncIterable<LogMessage>;
  /** The namespaces functions can be deployed to. */
  namespaces?(signal?: AbortSignal): Promise<string[]>;
  /** Managing namespaces, where the orchestrator can. */
  namespaceStore?: NamespaceStore;
  secrets?: SecretStore;
}
