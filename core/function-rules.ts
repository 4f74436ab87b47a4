import { parseDurationMs } from './duration.js';
import type { StringMap } from './function-types.js';
import { OpenFaasAnnotation } from './openfaas-names.js';

/**
 * What a function's labels and annotations say, read in one place: every reader (the gateway's
 * scale from zero, providers, the queue worker, connectors) takes its rule from here, so one key
 * means one thing everywhere.
 *
 * Precedence: the `com.openfaas.scale.*` keys are labels in OpenFaaS (faas-netes reads
 * `com.openfaas.scale.min` from the request's labels, the gateway's scaler from the function's
 * labels), while stack files and newer tools often put them in annotations. A label wins; an
 * annotation is read when there is no label. `topic` and `schedule` are annotations only, as in
 * OpenFaaS's connector-sdk and cron-connector.
 */

/** The label OpenFaaS's providers put on every function: its name (faas-netes, faasd). */
export const FaasFunctionLabel = 'faas_function';

/** The annotation that caps how many of a function's async calls one worker runs at once. */
export const QueueMaxInflightAnnotation = 'fnbus.queue.max_inflight';

/** Labels and annotations of a deployment or a status; either may be absent or null. */
export interface FunctionMeta {
  labels?: StringMap | null;
  annotations?: StringMap | null;
}

/** The replicas a function wants when it is deployed or woken, and whether it may idle to zero. */
export interface ScaleRules {
  /** Replicas at deploy; 0 deploys it idle (woken by its first call). Default 1. */
  min: number;
  /** Undefined when not set. */
  max: number | undefined;
  /** `com.openfaas.scale.zero=true`. */
  zero: boolean;
  /** `com.openfaas.scale.zero-duration`; undefined when not set. */
  zeroDurationMs: number | undefined;
  /**
   * `com.openfaas.scale.factor`: the percent of max one alert adds, 0 to 100 (0: the autoscaler
   * leaves the function alone); undefined when not set.
   */
  factor: number | undefined;
}

/** OpenFaaS's gateway (scaling/ranges.go): the most replicas alerts scale to, and its step. */
export const AlertMaxReplicas = 5;
export const DefaultScalingFactor = 10;

/**
 * The replicas an alert about a function asks for, as OpenFaaS's gateway reckons them
 * (handlers/alerthandler.go): `firing` adds ceil(max × factor / 100), max being the function's
 * `scale.max` capped at 5; `resolved` goes back to `scale.min`. fnbus differs in three ways that
 * only matter where OpenFaaS would do harm: `resolved` never goes below 1 (only the idler scales
 * to zero) and leaves a function at zero there; `firing` never lowers a count already above max;
 * a bad factor (outside 0..100) and 0 both leave the function as it is.
 */
export function alertReplicas(
  meta: FunctionMeta,
  status: 'firing' | 'resolved',
  current: number,
): number {
  const { min, max, factor = DefaultScalingFactor } = scaleRules(meta).rules;
  if (factor <= 0 || factor > 100) return current;
  if (status === 'resolved') return current === 0 ? 0 : Math.max(1, min);
  const top = Math.min(max ?? AlertMaxReplicas, AlertMaxReplicas);
  const step = Math.ceil((top / 100) * factor);
  return current >= top ? current : Math.min(current + step, top);
}

/** A key's value: the label, else the annotation. */
export function ruleValue(meta: FunctionMeta, key: string): string | undefined {
  return meta.labels?.[key] ?? meta.annotations?.[key];
}

const wholeNumber = /^\d+$/;

/**
 * The scale rules, and a problem for each value that is not what its key takes (named, with the
 * value). A problem leaves that rule at its default, so readers of stored functions never fail.
 */
export function scaleRules(meta: FunctionMeta): { rules: ScaleRules; problems: string[] } {
  const problems: string[] = [];
  const count = (key: string): number | undefined => {
    const text = ruleValue(meta, key);
    if (text === undefined) return undefined;
    if (wholeNumber.test(text.trim())) return Number(text.trim());
    problems.push(`${key}: "${text}" is not a whole number`);
    return undefined;
  };
  const min = count(OpenFaasAnnotation.ScaleMin);
  const max = count(OpenFaasAnnotation.ScaleMax);
  if (min !== undefined && max !== undefined && max < min) {
    problems.push(
      `${OpenFaasAnnotation.ScaleMax} (${max}) is below ${OpenFaasAnnotation.ScaleMin} (${min})`,
    );
  }
  const zeroText = ruleValue(meta, OpenFaasAnnotation.ScaleZero)?.trim();
  if (zeroText !== undefined && zeroText !== 'true' && zeroText !== 'false') {
    problems.push(`${OpenFaasAnnotation.ScaleZero}: "${zeroText}" is neither true nor false`);
  }
  const durationText = ruleValue(meta, OpenFaasAnnotation.ScaleZeroDuration);
  const zeroDurationMs = durationText === undefined ? undefined : parseDurationMs(durationText);
  if (durationText !== undefined && zeroDurationMs === undefined) {
    problems.push(`${OpenFaasAnnotation.ScaleZeroDuration}: "${durationText}" is not a duration`);
  }
  const factor = count(OpenFaasAnnotation.ScaleFactor);
  if (factor !== undefined && factor > 100) {
    problems.push(`${OpenFaasAnnotation.ScaleFactor}: "${factor}" is not between 0 and 100`);
  }
  return {
    rules: {
      min: min ?? 1,
      max,
      zero: zeroText === 'true',
      zeroDurationMs,
      factor,
    },
    problems,
  };
}

/** The replicas a call to a function at zero wakes it to: its minimum, at least 1. */
export function wakeReplicas(meta: FunctionMeta): number {
  return Math.max(1, scaleRules(meta).rules.min);
}

/**
 * The topics a function subscribes to: its `topic` annotation split on `delimiter` (none: the
 * whole value), trimmed, empties and repeats dropped, as OpenFaaS's connector-sdk reads it.
 */
export function topicsOf(meta: FunctionMeta, delimiter = ','): string[] {
  const value = meta.annotations?.[OpenFaasAnnotation.Topic];
  if (value === undefined) return [];
  const parts = delimiter ? value.split(delimiter) : [value];
  return [...new Set(parts.map((part) => part.trim()).filter(Boolean))];
}

/** A function's `schedule` annotation (a cron expression), if any. */
export function scheduleOf(meta: FunctionMeta): string | undefined {
  return meta.annotations?.[OpenFaasAnnotation.Schedule];
}

/** `fnbus.queue.max_inflight` when it is a whole number ≥ 1; else undefined. */
function queueMaxInflightValue(meta: FunctionMeta): number | string | undefined {
  const text = ruleValue(meta, QueueMaxInflightAnnotation);
  if (text === undefined) return undefined;
  const limit = Number(text);
  return Number.isInteger(limit) && limit > 0 ? limit : text;
}

/** How many of a function's async calls a worker runs at once: its own cap, never above `max`. */
export function queueMaxInflight(meta: FunctionMeta, max: number): number {
  const limit = queueMaxInflightValue(meta);
  return typeof limit === 'number' ? Math.min(limit, max) : max;
}

/**
 * The function's own timeout, from its watchdog settings in `envVars` (the longest of
 * `write_timeout` and `exec_timeout`): how long a call to it may take. Undefined when it sets none.
 */
export function functionTimeoutMs(envVars: StringMap | undefined): number | undefined {
  const longest = Math.max(
    0,
    ...['write_timeout', 'exec_timeout'].map((name) => {
      const text = envVars?.[name];
      return text === undefined ? 0 : (parseDurationMs(text) ?? 0);
    }),
  );
  return longest > 0 ? longest : undefined;
}

/** Every rule value that is not what its key takes, named: a deployment with one is refused. */
export function ruleProblems(meta: FunctionMeta): string[] {
  const problems = [...scaleRules(meta).problems];
  const limit = queueMaxInflightValue(meta);
  if (typeof limit === 'string') {
    problems.push(`${QueueMaxInflightAnnotation}: "${limit}" is not a whole number ≥ 1`);
  }
  return problems;
}

/** Labels with `faas_function: <name>` first, whatever value was given for it. */
export function withFunctionLabel(labels: StringMap | null | undefined, name: string): StringMap {
  const { [FaasFunctionLabel]: _given, ...others } = labels ?? {};
  return { [FaasFunctionLabel]: name, ...others };
}
