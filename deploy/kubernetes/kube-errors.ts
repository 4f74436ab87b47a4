import { ApiException } from '@kubernetes/client-node';
import {
  BadGatewayError,
  ConflictError,
  FnbusError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';

/**
 * An error of a call to the API server as an fnbus error saying `what` failed: 404 NotFound, 409
 * Conflict, 400/422 Validation (with the API server's reason: a name it refuses, a quantity it
 * cannot read), 401/403 BadGateway (fnbus's credentials or its RBAC lack the right), other
 * statuses BadGateway, no answer (or none within the call's deadline) Unavailable. The API
 * server's message comes along, cut short.
 */
export function kubeError(what: string, error: unknown): FnbusError {
  if (error instanceof FnbusError) return error;
  if (error instanceof ApiException) {
    const message = `${what}: ${apiMessage(error)}`;
    switch (error.code) {
      case 404:
        return new NotFoundError(message);
      case 409:
        return new ConflictError(message);
      case 400:
      case 422:
        return new ValidationError(message);
      case 401:
      case 403:
        return new BadGatewayError(`${message} (the Kubernetes API refused fnbus's credentials)`);
      default:
        return error.code >= 500 ? new UnavailableError(message) : new BadGatewayError(message);
    }
  }
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  if (name === 'AbortError' || name === 'TimeoutError') {
    return new UnavailableError(`${what}: the Kubernetes API did not answer in time`);
  }
  return new UnavailableError(
    `${what}: the Kubernetes API did not answer (${typeof code === 'string' ? code : 'no answer'})`,
  );
}

/** The API server's own message (its Status object's), else the status code. */
function apiMessage(error: ApiException<unknown>): string {
  let body: unknown = error.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // not a Status object
    }
  }
  const message = (body as { message?: unknown } | undefined)?.message;
  const text = typeof message === 'string' ? message : `HTTP ${error.code}`;
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Whether an error is the API server's 404. */
export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}
