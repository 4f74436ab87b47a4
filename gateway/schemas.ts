import { Type, type Static } from 'typebox';

/**
 * Request schemas of the OpenFaaS gateway API (faas-provider `types`), field for field. They
 * validate bodies (every rejection is a 400 naming the field) and generate the OpenAPI document.
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
const resources = Type.Object(
  {
    memory: Type.Optional(Type.String()),
    cpu: Type.Optional(Type.String()),
    'nvidia.com/gpu': Type.Optional(Type.String()),
    'amd.com/gpu': Type.Optional(Type.String()),
    'intel.com/gpu': Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const FunctionDeploymentSchema = Type.Object(
  {
    service: name,
    image: Type.String({ minLength: 1 }),
    namespace: Type.Optional(namespace),
    envProcess: Type.Optional(Type.String()),
    envVars: Type.Optional(Type.Union([stringMap, Type.Null()])),
    constraints: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
    secrets: Type.Optional(Type.Union([Type.Array(secretName), Type.Null()])),
    labels: Type.Optional(Type.Union([stringMap, Type.Null()])),
    annotations: Type.Optional(Type.Union([stringMap, Type.Null()])),
    limits: Type.Optional(Type.Union([resources, Type.Null()])),
    requests: Type.Optional(Type.Union([resources, Type.Null()])),
    readOnlyRootFilesystem: Type.Optional(Type.Boolean()),
    // Deprecated by OpenFaaS and ignored, but faas-cli may still send them.
    registryAuth: Type.Optional(Type.String()),
    network: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
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

/** faas-provider's `types.Secret`; `rawValue` is base64 (Go's []byte in JSON). */
export const SecretSchema = Type.Object(
  {
    name: secretName,
    namespace: Type.Optional(namespace),
    value: Type.Optional(Type.String()),
    rawValue: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', contentEncoding: 'base64' }),
    ),
  },
  { additionalProperties: false },
);
export type SecretBody = Static<typeof SecretSchema>;

/** The body of DELETE /system/secrets. */
export const SecretNameSchema = Type.Object(
  { name: secretName, namespace: Type.Optional(namespace) },
  { additionalProperties: false },
);

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
