import type {
  V1Deployment,
  V1EnvVar,
  V1ResourceRequirements,
  V1Service,
} from '@kubernetes/client-node';
import { ValidationError } from '../../core/errors.js';
import type {
  FunctionDeployment,
  FunctionResources,
  FunctionStatus,
  StringMap,
} from '../../core/function-types.js';
import { FaasFunctionLabel, functionTimeoutMs } from '../../core/function-rules.js';

/** The port every function's watchdog listens on, in its container and on its Service. */
export const watchdogPort = 8080;

/** Where a function's secrets are mounted, as OpenFaaS does. */
export const secretsPath = '/var/openfaas/secrets';

/** How long a replica told to stop keeps serving before its SIGTERM. */
const stopDelaySeconds = 2;

/** Image pull policies Kubernetes takes. */
export const pullPolicies = ['Always', 'IfNotPresent', 'Never'] as const;
export type PullPolicy = (typeof pullPolicies)[number];

/** The label every secret fnbus manages carries, as faas-netes labels its own. */
export const managedSecretLabel = { key: 'app.kubernetes.io/managed-by', value: 'openfaas' };

/** Annotation faas-netes adds to functions unless given: Prometheus does not scrape them. */
const scrapeAnnotation = 'prometheus.io.scrape';

export interface ObjectOptions {
  namespace: string;
  /** Replicas when created: the scale rules' minimum. */
  replicas: number;
  pullPolicy: PullPolicy;
}

/**
 * A function's Deployment, as faas-netes makes it: label and selector `faas_function=<name>`,
 * the request's labels on the pods and its annotations on both, a rolling update that never
 * takes a ready replica away, the watchdog's `/_/health` as readiness and liveness, env (with
 * `fprocess`) sorted by name, limits and requests, constraints as a node selector, secrets as one
 * projected volume at /var/openfaas/secrets, and a writable /tmp when the root is read-only.
 * Functions get no service-account token and no service links: they need neither.
 */
export function deploymentOf(spec: FunctionDeployment, options: ObjectOptions): V1Deployment {
  const name = spec.service;
  const labels = podLabels(spec);
  const annotations = podAnnotations(spec);
  const env: V1EnvVar[] = Object.entries({
    ...(spec.envVars ?? {}),
    ...(spec.envProcess ? { fprocess: spec.envProcess } : {}),
  })
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ name: key, value }));
  const secrets = spec.secrets ?? [];
  const readOnly = spec.readOnlyRootFilesystem === true;
  const probe = (periodSeconds: number) => ({
    httpGet: { path: '/_/health', port: watchdogPort },
    periodSeconds,
    timeoutSeconds: 1,
    failureThreshold: 3,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: options.namespace, labels, annotations },
    spec: {
      replicas: options.replicas,
      selector: { matchLabels: { [FaasFunctionLabel]: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      revisionHistoryLimit: 5,
      template: {
        metadata: { labels, annotations },
        spec: {
          automountServiceAccountToken: false,
          // The stop delay, then calls in flight finish within the function's own timeout.
          terminationGracePeriodSeconds: Math.max(
            30,
            stopDelaySeconds + Math.ceil((functionTimeoutMs(spec.envVars) ?? 0) / 1000) + 5,
          ),
          enableServiceLinks: false,
          ...(spec.constraints?.length ? { nodeSelector: nodeSelectorOf(spec.constraints) } : {}),
          containers: [
            {
              name,
              image: spec.image,
              imagePullPolicy: options.pullPolicy,
              ports: [{ name: 'http', containerPort: watchdogPort, protocol: 'TCP' }],
              env,
              resources: resourcesOf(spec.limits, spec.requests),
              // Readiness every second: a scale from zero waits on it.
              readinessProbe: probe(1),
              livenessProbe: { ...probe(5), initialDelaySeconds: 5 },
              securityContext: {
                readOnlyRootFilesystem: readOnly,
                allowPrivilegeEscalation: false,
              },
              // A replica told to stop keeps serving while the endpoints drop it (a gateway
              // that picked it a moment ago still gets in); then SIGTERM, and the watchdog drains.
              lifecycle: { preStop: { sleep: { seconds: stopDelaySeconds } } },
              volumeMounts: [
                ...(secrets.length
                  ? [{ name: 'secrets', mountPath: secretsPath, readOnly: true }]
                  : []),
                ...(readOnly ? [{ name: 'tmp', mountPath: '/tmp' }] : []),
              ],
            },
          ],
          volumes: [
            ...(secrets.length
              ? [
                  {
                    name: 'secrets',
                    projected: {
                      sources: secrets.map((secret) => ({
                        secret: { name: secret, items: [{ key: secret, path: secret }] },
                      })),
                    },
                  },
                ]
              : []),
            ...(readOnly ? [{ name: 'tmp', emptyDir: {} }] : []),
          ],
        },
      },
    },
  };
}

/** A function's Service: its name, port 8080 to the watchdog, selecting its pods. */
export function serviceOf(spec: FunctionDeployment, namespace: string): V1Service {
  const name = spec.service;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace,
      labels: { [FaasFunctionLabel]: name },
      annotations: podAnnotations(spec),
    },
    spec: {
      type: 'ClusterIP',
      selector: { [FaasFunctionLabel]: name },
      ports: [{ name: 'http', port: watchdogPort, targetPort: watchdogPort, protocol: 'TCP' }],
    },
  };
}

/**
 * A Deployment as `/system/function` shows it, as faas-netes reads one back: labels and
 * annotations from the pod template, `envProcess` from the env `fprocess`, desired and
 * available replicas, created when the Deployment was.
 */
export function statusOf(deployment: V1Deployment): FunctionStatus {
  const template = deployment.spec?.template;
  const container = template?.spec?.containers[0];
  const envVars: StringMap = {};
  let envProcess: string | undefined;
  for (const variable of container?.env ?? []) {
    if (variable.name === 'fprocess') envProcess = variable.value ?? '';
    else envVars[variable.name] = variable.value ?? '';
  }
  const secrets = (template?.spec?.volumes ?? [])
    .flatMap((volume) => volume.projected?.sources ?? [])
    .map((source) => source.secret?.name)
    .filter((name): name is string => !!name);
  const constraints = Object.entries(template?.spec?.nodeSelector ?? {}).map(
    ([key, value]) => `${key}==${value}`,
  );
  const status: FunctionStatus = {
    name: deployment.metadata?.name ?? '',
    image: container?.image ?? '',
    namespace: deployment.metadata?.namespace ?? '',
    envVars,
    labels: template?.metadata?.labels ?? {},
    annotations: template?.metadata?.annotations ?? {},
    replicas: deployment.spec?.replicas ?? 0,
    availableReplicas: deployment.status?.availableReplicas ?? 0,
    createdAt: (deployment.metadata?.creationTimestamp ?? new Date(0)).toISOString(),
    readOnlyRootFilesystem: container?.securityContext?.readOnlyRootFilesystem === true,
  };
  if (envProcess !== undefined) status.envProcess = envProcess;
  if (secrets.length) status.secrets = secrets;
  if (constraints.length) status.constraints = constraints;
  const limits = functionResources(container?.resources?.limits);
  const requests = functionResources(container?.resources?.requests);
  if (limits) status.limits = limits;
  if (requests) status.requests = requests;
  return status;
}

function podLabels(spec: FunctionDeployment): StringMap {
  return { ...(spec.labels ?? {}), [FaasFunctionLabel]: spec.service };
}

function podAnnotations(spec: FunctionDeployment): StringMap {
  return { [scrapeAnnotation]: 'false', ...(spec.annotations ?? {}) };
}

/**
 * Constraints as a node selector: `key==value` (Swarm's form, which faas-cli stacks carry) or
 * `key=value`. Anything else is a ValidationError naming it.
 */
export function nodeSelectorOf(constraints: string[]): StringMap {
  const selector: StringMap = {};
  for (const constraint of constraints) {
    const match = /^\s*([A-Za-z0-9][-A-Za-z0-9_./]*)\s*==?\s*([-A-Za-z0-9_.]*)\s*$/.exec(
      constraint,
    );
    if (!match) {
      throw new ValidationError(
        `constraint "${constraint}" is not a node label match: use key==value (or key=value)`,
      );
    }
    selector[match[1] as string] = match[2] as string;
  }
  return selector;
}

/** Kubernetes quantities: digits, an optional fraction, an optional unit. */
const quantity = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;

function resourcesOf(
  limits: FunctionResources | null | undefined,
  requests: FunctionResources | null | undefined,
): V1ResourceRequirements {
  const check = (resources: FunctionResources | null | undefined, what: string) => {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(resources ?? {}) as [string, string | undefined][]) {
      if (value === undefined || value === '') continue;
      if (!quantity.test(value)) {
        throw new ValidationError(
          `${what}.${key}: "${value}" is not a quantity (128Mi, 0.5, 100m)`,
        );
      }
      out[key] = value;
    }
    return Object.keys(out).length ? out : undefined;
  };
  const result: V1ResourceRequirements = {};
  const limitValues = check(limits, 'limits');
  const requestValues = check(requests, 'requests');
  if (limitValues) result.limits = limitValues;
  if (requestValues) result.requests = requestValues;
  return result;
}

function functionResources(
  values: Record<string, string> | undefined,
): FunctionResources | undefined {
  if (!values || Object.keys(values).length === 0) return undefined;
  return { ...values };
}
