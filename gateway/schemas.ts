import { Type, type Static, type TSchema } from 'typebox';

/**
 * Request schemas of the OpenFaaS gateway API (faas-provider `types`), field for field. They
 * validate bodies (every rejection is a 400 naming the field) and generate the OpenAPI document.
 * A field they do not name is accepted and dropped (knownFields), as OpenFaaS's Go decoders
 * ignore it: a later OpenFaaS's faas-cli may send fields this one does not know.
 */

const name = Type.String({
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  maxLength: 63,
  description: 'a DNS-1123 label',
});
const secretName = Type.String({
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  maxLength: 253,
  description: 'a DNS-1123 subdomain (dots allowed, as Kubernetes secret names)',
});
const namespace = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 });
const stringMap = Type.Record(Type.String(), Type.String());
/** An optional field that may also be `null`: OpenFaaS's Go decoder reads null as absent. */
const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const resources = Type.Object({
  memory: nullable(Type.String()),
  cpu: nullable(Type.String()),
  'nvidia.com/gpu': nullable(Type.String()),
  'amd.com/gpu': nullable(Type.String()),
  'intel.com/gpu': nullable(Type.String()),
});

export const FunctionDeploymentSchema = Type.Object({
  service: name,
  image: Type.String({ minLength: 1 }),
  namespace: nullable(namespace),
  envProcess: nullable(Type.String()),
  envVars: nullable(stringMap),
  constraints: nullable(Type.Array(Type.String())),
  secrets: nullable(Type.Array(secretName)),
  labels: nullable(stringMap),
  annotations: nullable(stringMap),
  limits: nullable(resources),
  requests: nullable(resources),
  readOnlyRootFilesystem: nullable(Type.Boolean()),
  // Deprecated by OpenFaaS and ignored, but faas-cli may still send them.
  registryAuth: nullable(Type.String()),
  network: nullable(Type.String()),
});
export type FunctionDeploymentBody = Static<typeof FunctionDeploymentSchema>;

export const ScaleServiceRequestSchema = Type.Object({
  serviceName: Type.Optional(Type.String()),
  replicas: Type.Integer({ minimum: 0, maximum: 1000 }),
  namespace: Type.Optional(Type.String()),
});

export const DeleteFunctionRequestSchema = Type.Object({
  functionName: name,
  namespace: Type.Optional(namespace),
});

export const NameParamsSchema = Type.Object({ name: Type.String({ minLength: 1 }) });
export const NamespaceQuerySchema = Type.Object({ namespace: Type.Optional(Type.String()) });

/** faas-provider's `types.FunctionNamespace`; unknown fields ignored, as Go's decoder does. */
export const FunctionNamespaceSchema = Type.Object({
  name: Type.Optional(namespace),
  labels: nullable(stringMap),
  annotations: nullable(stringMap),
});
export type FunctionNamespaceBody = Static<typeof FunctionNamespaceSchema>;

/** faas-provider's `types.Secret`; `rawValue` is base64 (Go's []byte in JSON). */
export const SecretSchema = Type.Object({
  name: secretName,
  namespace: Type.Optional(namespace),
  value: Type.Optional(Type.String()),
  rawValue: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', contentEncoding: 'base64' }),
  ),
});
export type SecretBody = Static<typeof SecretSchema>;

/** The body of DELETE /system/secrets. */
export const SecretNameSchema = Type.Object({
  name: secretName,
  namespace: Type.Optional(namespace),
});

/**
 * `/system/logs`'s query. Values stay strings here (no coercion): `tail`, `follow` and `since`
 * are parsed by the route, which answers 400 naming the one that is wrong.
 */
export const LogsQuerySchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  namespace: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  tail: Type.Optional(
    Type.String({ description: 'an integer: the last N lines; negative for all' }),
  ),
  follow: Type.Optional(
    Type.String({ description: 'a boolean, as Go parses one (true, 1, false, 0)' }),
  ),
  since: Type.Optional(
    Type.String({ description: 'RFC 3339 time: only lines written at or after' }),
  ),
});
