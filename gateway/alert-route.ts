import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../core/errors.js';
import { splitFunctionName } from '../core/function-name.js';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import { scaleOnAlert } from './autoscaler.js';
import type { GatewayConfig } from './config.js';

interface Alert {
  status: string;
  functionName: string;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The alerts of an AlertManager webhook body, or undefined when it is not one: checked as Go's
 * decoder checks OpenFaaS's PrometheusAlert (missing fields are empty, wrong types refused).
 */
function readAlerts(body: unknown): Alert[] | undefined {
  if (!isObject(body)) return undefined;
  for (const key of ['status', 'receiver'] as const) {
    if (body[key] !== undefined && body[key] !== null && typeof body[key] !== 'string') {
      return undefined;
    }
  }
  const list = body.alerts ?? [];
  if (!Array.isArray(list)) return undefined;
  const alerts: Alert[] = [];
  for (const item of list) {
    if (!isObject(item)) return undefined;
    const labels = item.labels ?? {};
    if (!isObject(labels)) return undefined;
    const status = item.status ?? '';
    const functionName = labels.function_name ?? '';
    if (typeof status !== 'string' || typeof functionName !== 'string') return undefined;
    alerts.push({ status, functionName });
  }
  return alerts;
}

/**
 * `POST /system/alert`: Prometheus AlertManager's webhook, as OpenFaaS's gateway takes it
 * (handlers/alerthandler.go), so a Prometheus + AlertManager setup made for OpenFaaS scales
 * fnbus's functions: each alert's `labels.function_name` (`name` or `name.namespace`) is scaled by
 * `scaleOnAlert`, `firing` up by its step, anything else back to its minimum. 400 for a body that
 * is not such JSON; 500 listing `[i] error` lines if some scale failed; else 200. An alert without
 * a function name, or for an unknown function, is skipped, as OpenFaaS skips it.
 */
export function registerAlertRoute(
  app: FastifyInstance,
  { provider, config, logger }: { provider: Provider; config: GatewayConfig; logger?: Logger },
): void {
  app.post(
    '/system/alert',
    {
      schema: {
        summary: 'Scale functions on Prometheus AlertManager alerts (its webhook)',
        statuses: {
          200: 'applied',
          400: 'not an AlertManager body',
          500: 'some scale failed: one line each',
        },
      },
    },
    async (request, reply) => {
      const alerts = readAlerts(request.body);
      if (!alerts) {
        return reply.code(400).type('text/plain').send('Unable to parse alert, bad format.');
      }
      const errors: string[] = [];
      for (const alert of alerts) {
        if (alert.functionName === '') continue;
        const { name, namespace = config.functionNamespace } = splitFunctionName(
          alert.functionName,
          config.functionNamespace,
        );
        const status = alert.status === 'firing' ? 'firing' : 'resolved';
        try {
          const replicas = await scaleOnAlert(provider, name, namespace, status);
          logger?.info({ function: alert.functionName, status, replicas }, 'alert: scaled');
        } catch (error) {
          if (error instanceof NotFoundError) continue;
          errors.push(`[${errors.length}] ${(error as Error).message}`);
        }
      }
      if (errors.length > 0) {
        return reply
          .code(500)
          .type('text/plain')
          .send(`${errors.join('\n')}\n`);
      }
      return reply.code(200).send();
    },
  );
}
