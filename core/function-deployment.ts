import { ValidationError } from './errors.js';
import { assertDnsLabel, assertDnsSubdomain } from './function-name.js';
import { ruleProblems, withFunctionLabel } from './function-rules.js';
import type { FunctionDeployment } from './function-types.js';

/** The optional fields of a deployment; `null` in one means "not given", as Go decodes it. */
const optionalFields = [
  'namespace',
  'envProcess',
  'envVars',
  'constraints',
  'secrets',
  'labels',
  'annotations',
  'limits',
  'requests',
  'readOnlyRootFilesystem',
  'registryAuth',
  'network',
] as const;

/**
 * The deployment with every `null` optional field (and `null` resource quantity) left out.
 * OpenFaaS's Go decoder reads `null` as the zero value (an empty list, map or string), so
 * `"secrets": null` means no secrets; the rest of fnbus then never meets a null.
 */
export function withoutNulls<T extends object>(body: T): T {
  const out = { ...body } as Record<string, unknown>;
  for (const field of optionalFields) if (out[field] === null) delete out[field];
  for (const field of ['limits', 'requests'] as const) {
    const resources = out[field];
    if (typeof resources === 'object' && resources !== null) {
      out[field] = Object.fromEntries(
        Object.entries(resources as Record<string, unknown>).filter(([, v]) => v !== null),
      );
    }
  }
  return out as T;
}

/**
 * An environment variable name as Kubernetes has long accepted them (a C identifier, plus `.`
 * and `-`): never empty, never `=` (it would end the name) nor NUL (it would end the string).
 */
const envName = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
// eslint-disable-next-line no-control-regex
const controlCharacter = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * What no provider can be given or what would break a header or a log line, naming the field:
 * envVars names that are not variable names, NUL in a value or in envProcess, label and
 * annotation keys that are empty or hold control characters, NUL in their values. A NUL cannot
 * cross exec(): such a function would never start, and would be retried on every call.
 */
function fieldProblems(spec: FunctionDeployment): string[] {
  const problems: string[] = [];
  if (spec.envProcess !== undefined && typeof spec.envProcess !== 'string') {
    problems.push('envProcess: must be text');
  } else if (spec.envProcess?.includes('\0')) {
    problems.push('envProcess: must not contain a NUL character');
  }
  for (const [name, value] of Object.entries(spec.envVars ?? {})) {
    if (!envName.test(name)) {
      problems.push(
        `envVars: ${JSON.stringify(name)} is not a variable name (letters, digits, "_", "." and "-", not starting with a digit; no "=")`,
      );
    } else if (typeof value === 'string' && value.includes('\0')) {
      problems.push(`envVars.${name}: must not contain a NUL character`);
    }
  }
  for (const field of ['labels', 'annotations'] as const) {
    for (const [key, value] of Object.entries(spec[field] ?? {})) {
      if (key === '' || controlCharacter.test(key)) {
        problems.push(
          `${field}: ${JSON.stringify(key)} is not a key (empty, or control characters)`,
        );
      } else if (typeof value === 'string' && value.includes('\0')) {
        problems.push(`${field}.${key}: must not contain a NUL character`);
      }
    }
  }
  if (spec.image !== undefined && typeof spec.image !== 'string') {
    problems.push('image: must be text');
  }
  if (spec.secrets !== undefined) {
    if (!Array.isArray(spec.secrets)) problems.push('secrets: must be a list of names');
    else
      problems.push(
        ...spec.secrets.flatMap((name) => problemOf(() => assertDnsSubdomain(name, 'secret name'))),
      );
  }
  problems.push(...ruleProblems(spec));
  return problems;
}

/**
 * A deployment as every provider receives it, or a ValidationError (400) naming each thing that
 * was wrong. Applied by the gateway (and by `fnbus up` for its stack) before any provider sees
 * the spec: `null` fields left out (as Go reads them), the deprecated `registryAuth` and `network`
 * dropped, the namespace made explicit, `image` text (empty when not given: a provider that needs
 * one says so), the name a DNS-1123 label, the fields and the rules of function-rules.ts checked,
 * and OpenFaaS's `faas_function: <name>` label set, whatever value was given for it.
 */
export function normalizeDeployment(given: unknown, defaultNamespace: string): FunctionDeployment {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new ValidationError('a function deployment must be an object');
  }
  const {
    registryAuth: _registryAuth,
    network: _network,
    ...rest
  } = withoutNulls(given as FunctionDeployment & { registryAuth?: unknown; network?: unknown });
  const service = typeof rest.service === 'string' ? rest.service : '';
  const problems = problemOf(() => assertDnsLabel(service, 'function name'));
  const namespace = rest.namespace || defaultNamespace;
  problems.push(...problemOf(() => assertDnsLabel(namespace, 'namespace')));
  const spec: FunctionDeployment = { ...rest, service, image: rest.image ?? '', namespace };
  problems.push(...fieldProblems(spec));
  if (problems.length > 0) throw new ValidationError(`invalid deployment: ${problems.join('; ')}`);
  return { ...spec, labels: withFunctionLabel(spec.labels, service) };
}

/** The message of the ValidationError `check` throws, if it does. */
function problemOf(check: () => void): string[] {
  try {
    check();
    return [];
  } catch (error) {
    if (error instanceof ValidationError) return [error.message];
    throw error;
  }
}
