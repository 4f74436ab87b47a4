import type { LogFn, Logger } from '../core/logger.js';

const levels = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/**
 * A JSON-lines logger in pino's format (`{"level":30,"time":…,"name":…,"msg":…}`), written
 * synchronously to a file descriptor. The watchdog logs a handful of lines per lifetime, so it
 * uses this rather than pino, which costs it ~7 MB of resident memory in every function.
 */
export function createJsonLogger(
  name: string,
  write: (line: string) => void,
  bindings: Record<string, unknown> = {},
): Logger {
  const log =
    (level: number): LogFn =>
    (fieldsOrMessage: Record<string, unknown> | string, message?: string) => {
      const fields = typeof fieldsOrMessage === 'string' ? {} : fieldsOrMessage;
      const msg = typeof fieldsOrMessage === 'string' ? fieldsOrMessage : message;
      write(
        `${JSON.stringify({ level, time: Date.now(), name, ...bindings, ...serialize(fields), msg })}\n`,
      );
    };
  return {
    debug: log(levels.debug),
    info: log(levels.info),
    warn: log(levels.warn),
    error: log(levels.error),
    child: (more) => createJsonLogger(name, write, { ...bindings, ...more }),
  };
}

/** Errors become `{type, message, stack}`, as pino's `err` serializer makes them. */
function serialize(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] =
      value instanceof Error
        ? { type: value.name, message: value.message, stack: value.stack }
        : value;
  }
  return out;
}
