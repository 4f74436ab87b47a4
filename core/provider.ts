import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FunctionDeployment, FunctionStatus, Secret } from './function-types.js';
import type { ProviderInfo } from './info-types.js';
import type { LogMessage, LogRequest } from './log-types.js';

/**
 * Secrets of one provider. Optional as a whole: a provider has all of it or none, and the gateway
 * answers 501 on `/system/secrets` when it is absent.
 */
export interface SecretStore {
  /** Names (and namespaces) only: values never leave the store. */
  list(namespace?: string): Promise<Secret[]>;
  /** ConflictError if it exists. */
  create(secret: Secret): Promise<void>;
  /** NotFoundError if it does not exist. */
  update(secret: Secret): Promise<void>;
  /** NotFoundError if it does not exist. */
  remove(name: string, namespace?: string): Promise<void>;
}

/** A replica that serves calls inside the gateway's own process. */
export interface LocalReplica {
  /**
   * Serves one call; `req.url` is the path and query the function sees. A call still running
   * after `timeoutMs` (the gateway's upstream_timeout; 0 for none) is stopped and answered 502.
   */
  serve(req: IncomingMessage, res: ServerResponse, timeoutMs: number): void;
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
 */
export interface Provider {
  /** For `/system/info`. */
  info(): Promise<ProviderInfo>;
  /** Creates the function; ConflictError if it exists. Returns once accepted, not once ready. */
  deploy(spec: FunctionDeployment): Promise<void>;
  /** Replaces an existing function's spec; keeps its replica count. */
  update(spec: FunctionDeployment): Promise<void>;
  remove(name: string, namespace?: string): Promise<void>;
  list(namespace?: string): Promise<FunctionStatus[]>;
  /** undefined when there is no such function: not finding one is an answer here. */
  get(name: string, namespace?: string): Promise<FunctionStatus | undefined>;
  /** Sets the desired replicas; 0 is allowed (scale to zero). Returns before they are ready. */
  scale(name: string, replicas: number, namespace?: string): Promise<void>;
  /**
   * The base URL of one ready replica, chosen by the provider (so it can spread load).
   * UnavailableError when the function exists but has no ready replica.
   */
  resolve(name: string, namespace?: string): Promise<URL>;
  /**
   * Only for providers whose replicas run in the gateway's process (the process provider): a
   * ready replica chosen as resolve() chooses, handed the call directly, so it crosses one proxy
   * rather than two. Synchronous, as it runs on every call; throws as resolve() rejects.
   */
  resolveLocal?(name: string, namespace?: string): LocalReplica;
  /** Lines of the function's logs; the stream ends when `signal` aborts or, unless following, at the end. */
  logs?(req: LogRequest, signal: AbortSignal): AsyncIterable<LogMessage>;
  /** The namespaces functions can be deployed to. */
  namespaces?(): Promise<string[]>;
  secrets?: SecretStore;
}
