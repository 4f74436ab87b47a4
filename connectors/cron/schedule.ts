import { CronExpressionParser } from 'cron-parser';
import { parseDurationMs } from '../../core/duration.js';
import { ValidationError } from '../../core/errors.js';

/** A `schedule` annotation (or its time zone) that cannot be read: the deployer's input, a 400. */
export class ScheduleError extends ValidationError {}

/** One schedule of a function: when it fires next. */
export interface Schedule {
  /** As written, e.g. `*\/5 * * * *` or `@every 30s`. */
  text: string;
  /** The first firing strictly after `afterMs` (ms since the epoch). */
  next(afterMs: number): number;
}

/**
 * Parses a `schedule` annotation: one or more schedules separated by `;`, each a cron expression
 * of 5 fields (minute first, as OpenFaaS) or 6 (seconds first), a descriptor (`@hourly`,
 * `@daily`, `@weekly`, `@monthly`, `@yearly`, `@minutely`), or `@every <duration>` (`30s`,
 * `1m30s`). Cron expressions are read in `timeZone` (IANA name; UTC by default), daylight saving
 * included: a time skipped by a change fires once, after it; a fixed time in a repeated hour
 * fires once (wildcard minutes fire in both passes of the hour). `@every`
 * fires at whole multiples of the duration since the epoch, so every replica agrees on its slots.
 * Throws a ScheduleError naming what is wrong.
 */
export function parseSchedules(annotation: string, timeZone = 'UTC'): Schedule[] {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
  } catch {
    throw new ScheduleError(`time zone "${timeZone}" is not an IANA name (e.g. Europe/Berlin)`);
  }
  const texts = annotation
    .split(';')
    .map((text) => text.trim())
    .filter(Boolean);
  if (texts.length === 0) throw new ScheduleError('the schedule is empty');
  return texts.map((text) => parseOne(text, timeZone));
}

function parseOne(text: string, timeZone: string): Schedule {
  const every = /^@every\s+(\S+)$/i.exec(text);
  if (every) {
    const ms = parseDurationMs(every[1] as string);
    if (ms === undefined || ms < 1000) {
      throw new ScheduleError(`"${text}": @every takes a duration of 1s or more (e.g. @every 30s)`);
    }
    return { text, next: (afterMs) => (Math.floor(afterMs / ms) + 1) * ms };
  }
  const fields = text.split(/\s+/).length;
  if (!text.startsWith('@') && fields !== 5 && fields !== 6) {
    throw new ScheduleError(
      `"${text}": a cron expression has 5 fields (6 with seconds), not ${fields}`,
    );
  }
  try {
    CronExpressionParser.parse(text, { tz: timeZone });
  } catch (error) {
    throw new ScheduleError(`"${text}": ${(error as Error).message}`, { cause: error });
  }
  return {
    text,
    next(afterMs) {
      const expression = CronExpressionParser.parse(text, {
        tz: timeZone,
        currentDate: new Date(afterMs),
      });
      return expression.next().getTime();
    },
  };
}
