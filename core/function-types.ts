/**
 * The function shapes of the OpenFaaS system API (faas-provider `types`), field for field as they
 * appear in JSON, so OpenFaaS clients, the faas-cli and stack files work unchanged. A field Go
 * marks `omitempty` is optional here; a Go pointer (labels, annotations, limits, requests, usage)
 * may also arrive as `null`.
 */

/** Labels and annotations: string keys to string values. */
export type StringMap = Record<string, string>;

/** Limits or requests of a function. Values are orchestrator quantities (`128M`, `0.5`). */
export interface FunctionResources {
  memory?: string;
  cpu?: string;
  'nvidia.com/gpu'?: string;
  'amd.com/gpu'?: string;
  'intel.com/gpu'?: string;
}

/** The body of POST (deploy) and PUT (update) `/system/functions`. */
export interface FunctionDeployment {
  /** The function's name: a DNS-1123 label. */
  service: string;
  image: string;
  /** Absent: the provider's default namespace. */
  namespace?: string;
  /** The command the watchdog runs; becomes the env var `fprocess`. */
  envProcess?: string;
  envVars?: StringMap;
  /** Placement constraints; their meaning is the provider's. */
  constraints?: string[];
  /** Names of secrets to mount into the function. */
  secrets?: string[];
  labels?: StringMap | null;
  /** Where `topic`, `schedule` and the other annotations of openfaas-names.ts live. */
  annotations?: StringMap | null;
  limits?: FunctionResources | null;
  requests?: FunctionResources | null;
  readOnlyRootFilesystem?: boolean;
}

/** Resource use of a function's replicas, as the provider last measured it. */
export interface FunctionUsage {
  /** CPU use, in the Kubernetes sense of millicores. */
  cpu?: number;
  totalMemoryBytes?: number;
}

/** One function as GET `/system/functions` (an array of these) and `/system/function/{name}` return it. */
export interface FunctionStatus {
  name: string;
  image: string;
  namespace?: string;
  envProcess?: string;
  envVars?: StringMap;
  constraints?: string[];
  secrets?: string[];
  labels?: StringMap | null;
  annotations?: StringMap | null;
  limits?: FunctionResources | null;
  requests?: FunctionResources | null;
  readOnlyRootFilesystem?: boolean;
  /** Filled in by the gateway from its metrics, not by the provider. */
  invocationCount?: number;
  /** Desired replicas. */
  replicas?: number;
  /** Replicas ready to take calls; 0 means a call has to wait for a scale-up. */
  availableReplicas?: number;
  /** When the function was created: RFC 3339 text, as Go writes a time.Time. */
  createdAt: string;
  usage?: FunctionUsage | null;
}

/** The body of POST `/system/scale-function/{name}`. */
export interface ScaleServiceRequest {
  serviceName: string;
  replicas: number;
  namespace?: string;
}

/** The body of DELETE `/system/functions`. */
export interface DeleteFunctionRequest {
  functionName: string;
  namespace?: string;
}

/**
 * A secret, as `/system/secrets` takes it. `value` carries text; `rawValue` carries bytes as
 * base64 text (Go's JSON form of []byte). Listings return names only, never values.
 */
export interface Secret {
  name: string;
  namespace?: string;
  value?: string;
  rawValue?: string;
}

/** A namespace, as `/system/namespace/{name}` takes and returns it. */
export interface FunctionNamespace {
  name: string;
  annotations?: StringMap;
  labels?: StringMap;
}
