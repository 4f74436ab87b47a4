import { readFileSync } from 'node:fs';
import type * as TypeBoxSchemas from './schemas.js';

/**
 * The request schemas the gateway validates with: those of schemas.ts, as the JSON that the build
 * wrote (compile-schemas.ts). Same objects, same static types, without loading TypeBox.
 */
const schemas = JSON.parse(
  readFileSync(new URL('./schemas.json', import.meta.url), 'utf8'),
) as typeof TypeBoxSchemas;

export const {
  FunctionDeploymentSchema,
  ScaleServiceRequestSchema,
  DeleteFunctionRequestSchema,
  NameParamsSchema,
  NamespaceQuerySchema,
  SecretSchema,
  SecretNameSchema,
  LogsQuerySchema,
  FunctionNamespaceSchema,
} = schemas;
export type { FunctionDeploymentBody, FunctionNamespaceBody, SecretBody } from './schemas.js';
