import { ValidationError } from './errors.js';

/** A function's name and namespace; `namespace` undefined means the default one. */
export interface FunctionName {
  name: string;
  namespace: string | undefined;
}

/**
 * Splits `name.namespace` at the last dot, as the OpenFaaS gateway does, so `a.b.prod` is `a.b`
 * in `prod`. No dot, or nothing after the last one, gives `defaultNamespace`.
 */
export function splitFunctionName(full: string, defaultNamespace?: string): FunctionName {
  const dot = full.lastIndexOf('.');
  if (dot === -1) return { name: full, namespace: defaultNamespace };
  const namespace = full.slice(dot + 1);
  return { name: full.slice(0, dot), namespace: namespace === '' ? defaultNamespace : namespace };
}

/** The inverse of splitFunctionName: `name.namespace`, or just `name` with no namespace. */
export function joinFunctionName(name: string, namespace?: string): string {
  return namespace ? `${name}.${namespace}` : name;
}

/**
 * One name per function for what is kept under it (queued calls, dead letters): `name` in the
 * default namespace, `name.namespace` in another, whichever way it was addressed.
 */
export function canonicalFunctionName(full: string, defaultNamespace: string): string {
  const { name, namespace } = splitFunctionName(full, defaultNamespace);
  return namespace === defaultNamespace ? name : joinFunctionName(name, namespace);
}

export const maxDnsLabelLength = 63;
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Whether `text` is a DNS-1123 label: lowercase letters, digits and `-`, starting and ending with
 * a letter or digit, at most 63 characters. Functions and namespaces are named so that every
 * orchestrator (a Kubernetes service, a DNS name) accepts them.
 */
export function isDnsLabel(text: string): boolean {
  return text.length <= maxDnsLabelLength && dnsLabel.test(text);
}

/** Throws a ValidationError (400) saying what is wrong unless `text` is a DNS-1123 label. */
export function assertDnsLabel(text: string, what = 'function name'): void {
  if (isDnsLabel(text)) return;
  const why =
    text === ''
      ? 'is empty'
      : text.length > maxDnsLabelLength
        ? `is ${text.length} characters long, more than ${maxDnsLabelLength}`
        : 'must be lowercase letters, digits and "-", starting and ending with a letter or digit';
  throw new ValidationError(`invalid ${what} "${text}": ${why}`);
}

const maxDnsSubdomainLength = 253;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Whether `text` is a DNS-1123 subdomain: labels joined by dots, at most 253 characters. Secrets
 * are named so, as Kubernetes names them (`db.password`).
 */
export function isDnsSubdomain(text: string): boolean {
  return text.length <= maxDnsSubdomainLength && dnsSubdomain.test(text);
}

/** Throws a ValidationError (400) saying what is wrong unless `text` is a DNS-1123 subdomain. */
export function assertDnsSubdomain(text: string, what: string): void {
  if (isDnsSubdomain(text)) return;
  const why =
    text === ''
      ? 'is empty'
      : text.length > maxDnsSubdomainLength
        ? `is ${text.length} characters long, more than ${maxDnsSubdomainLength}`
        : 'must be lowercase letters, digits, "-" and ".", each dot-separated part starting and ending with a letter or digit';
  throw new ValidationError(`invalid ${what} "${text}": ${why}`);
}
