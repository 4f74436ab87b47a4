import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { EnvReader, fnbusName, type Env } from '../../core/config.js';

/** The caps of the process provider; unset ones take defaults that fit the machine. */
export interface ProviderLimits {
  /** Functions deployed at once. */
  maxFunctions?: number;
  /** Desired replicas of one function. */
  maxReplicas?: number;
  /** Desired replicas of all functions together. */
  maxTotalReplicas?: number;
}

/**
 * File descriptors the hub keeps for itself (callers' connections, the queue, connectors, logs)
 * and what one replica holds: its watchdog's loopback socket and the pipes to its process
 * (fork: the spawner's two; http: the function's three, plus kept-alive upstream sockets).
 */
const reservedFds = 256;
const fdsPerReplica = 4;

/** Defaults when the fd limit leaves room for more. */
const defaultMaxFunctions = 1000;
const defaultMaxReplicas = 100;
const defaultMaxTotalReplicas = 1000;

/**
 * The caps from env (`max_functions`, `max_replicas_per_function`, `max_total_replicas`);
 * unset ones are left out. Throws one ConfigError naming every bad value.
 */
export function readProviderLimits(env: Env): Readonly<ProviderLimits> {
  const read = new EnvReader(env);
  const limits: ProviderLimits = {};
  const take = (name: readonly string[], key: keyof ProviderLimits, min: number) => {
    if (read.raw(...name) !== undefined) limits[key] = read.integer(name, 0, { min });
  };
  take(fnbusName('max_functions'), 'maxFunctions', 1);
  take(fnbusName('max_replicas_per_function'), 'maxReplicas', 1);
  take(fnbusName('max_total_replicas'), 'maxTotalReplicas', 1);
  return read.done(limits);
}

/**
 * The soft limit on open files of this process (`ulimit -n`): from /proc/self/limits on Linux,
 * else from a shell; undefined when neither can tell (or it is unlimited). Node raises its soft
 * limit to the hard one when it starts, so this is what the hub really has.
 */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((text) => text.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft !== undefined) return soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    // Not Linux: ask a shell, whose limit is this process's (inherited).
  }
  try {
    const text = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000 });
    const value = Number(text.trim());
    return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Replicas that fit in `fdLimit` open files beside the hub's own; at least 1. */
export function replicasThatFit(fdLimit: number | undefined): number {
  if (fdLimit === undefined) return Number.MAX_SAFE_INTEGER;
  return Math.max(1, Math.floor((fdLimit - reservedFds) / fdsPerReplica));
}

/** The caps in force, and the configured ones that were lowered to fit the fd limit. */
export interface EffectiveLimits {
  maxFunctions: number;
  maxReplicas: number;
  maxTotalReplicas: number;
  fdLimit: number | undefined;
  /** Configured caps that did not fit (a warning to log at start). */
  lowered: string[];
}

export function effectiveLimits(
  configured: ProviderLimits,
  fdLimit: number | undefined,
): EffectiveLimits {
  const fit = replicasThatFit(fdLimit);
  const lowered: string[] = [];
  let maxTotalReplicas = configured.maxTotalReplicas ?? defaultMaxTotalReplicas;
  if (maxTotalReplicas > fit) {
    if (configured.maxTotalReplicas !== undefined) {
      lowered.push(
        `max_total_replicas ${maxTotalReplicas} lowered to ${fit}: the open-file limit is ${fdLimit} (${fdsPerReplica} per replica, ${reservedFds} for the hub)`,
      );
    }
    maxTotalReplicas = fit;
  }
  let maxReplicas = configured.maxReplicas ?? defaultMaxReplicas;
  if (maxReplicas > maxTotalReplicas) {
    if (configured.maxReplicas !== undefined) {
      lowered.push(
        `max_replicas_per_function ${maxReplicas} lowered to max_total_replicas ${maxTotalReplicas}`,
      );
    }
    maxReplicas = maxTotalReplicas;
  }
  return {
    maxFunctions: configured.maxFunctions ?? defaultMaxFunctions,
    maxReplicas,
    maxTotalReplicas,
    fdLimit,
    lowered,
  };
}
