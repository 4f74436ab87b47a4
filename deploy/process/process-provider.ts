import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConflictError,
  LimitError,
  NotFoundError,
  NotStartedError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import { normalizeDeployment } from '../../core/function-deployment.js';
import { assertDnsLabel, isDnsLabel, joinFunctionName } from '../../core/function-name.js';
import { scaleRules } from '../../core/function-rules.js';
import type { FunctionDeployment, FunctionStatus, StringMap } from '../../core/function-types.js';
import type { ProviderInfo } from '../../core/info-types.js';
import type { LogMessage, LogRequest } from '../../core/log-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { OpenFaasAnnotation } from '../../core/openfaas-names.js';
import type { Provider, SecretStore } from '../../core/provider.js';
import { build, version } from '../../watchdog/version.js';
import { withSecretsPath } from './secrets-path.js';
import { FileNamespaceStore, type NamespaceSpace } from './file-namespace-store.js';
import type { FunctionRecord } from './function-state.js';
import { planLaunch, type LaunchPlan } from './launch-plan.js';
import type { LocalImageStore } from './local-image-store.js';
import {
  effectiveLimits,
  openFileLimit,
  type EffectiveLimits,
  type ProviderLimits,
} from './limits.js';
import { closedLine, LogRing, type LogLine } from './log-ring.js';
import { Replica, replicaConfig } from './replica.js';
import { SerialChanges } from './serial-changes.js';
import { onDisk, safeReason } from './storage-error.js';

/** The repository root: this file is dist/deploy/process/process-provider.js once built. */
const defaultRepoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The env var naming the folder that holds a function's secrets, one file per secret. */
export const SecretsPathEnv = 'FNBUS_SECRETS_PATH';

export interface ProcessProviderOptions extends ProviderLimits {
  /** Where deployments, secrets and each replica's TMPDIR live. */
  stateDir: string;
  /**
   * The default namespace (where a deployment naming none goes); default `openfaas-fn`, as
   * OpenFaaS's. Others are made through `namespaceStore`.
   */
  namespace?: string;
  /** Holds `templates/`; default: this package. */
  repoRoot?: string;
  /** What `fnbus build` made of template functions, by image name; without it, commands only. */
  images?: LocalImageStore;
  /** Every replica's environment before the function's envVars; default: PATH only. */
  baseEnv?: StringMap;
  /** Lines of logs kept per function; default 1000. */
  logLines?: number;
  /** The open-file limit the caps must fit in; default: this process's (`ulimit -n`). */
  fdLimit?: number;
  /**
   * How long a replica leaving the pool (scale down, update) keeps running before SIGTERM, so a
   * caller that resolved it a moment before still gets through; default 500ms.
   */
  drainDelayMs?: number;
  logger?: Logger;
}

interface FunctionEntry {
  record: FunctionRecord;
  plan: LaunchPlan;
  /** Bumped by every update: replicas of older generations are replaced. */
  generation: number;
  /** Every replica in the pool, of any generation; retired ones leave it at once. */
  replicas: Replica[];
  logs: LogRing;
  /** Round-robin cursor of resolve(). */
  cursor: number;
  /** No longer managed: removed, or the provider closed. */
  removed: boolean;
  /** Removed for good: its record must not be written again. */
  deleted: boolean;
  /** The last write of its record: writes run one after another, each of the latest record. */
  saving: Promise<void>;
  /**
   * Why its replicas are not running (kept from the state folder over a cap, or no longer valid):
   * it is listed, not ready, until a change starts it or removes it.
   */
  notStarted: NotStarted | undefined;
}

interface NotStarted {
  reason: string;
  /** The cap it is over, if that is why: a scale or update starts it once it fits. */
  cap?: 'max_functions' | 'max_total_replicas';
}

/** What one replica is doing, for diagnostics and tests. */
export interface ReplicaInfo {
  instance: string;
  generation: number;
  pid: number | undefined;
  ready: boolean;
  url: string | undefined;
  restarts: number;
}

/**
 * The embedded provider: every replica of a function is a watchdog run inside this process (the
 * gateway hands it calls directly, see resolveLocal) in front of the function's local process, on
 * a loopback port, supervised (restarted with backoff), health-checked, and listed in a pool that
 * resolve() round-robins over. Deployments are kept in `stateDir`, so start() brings them back.
 */
export class ProcessProvider implements Provider {
  /** Secrets, each namespace's apart. */
  readonly secrets: SecretStore;
  /** Namespaces: the default one, and those made since (kept in the state folder). */
  readonly namespaceStore: FileNamespaceStore;
  readonly #stateDir: string;
  readonly #repoRoot: string;
  readonly #images: LocalImageStore | undefined;
  readonly #baseEnv: StringMap;
  readonly #logLines: number;
  readonly #limits: EffectiveLimits;
  readonly #drainDelayMs: number;
  readonly #logger: Logger;
  /** Keyed `<name>.<namespace>`: the same name in two namespaces is two functions. */
  readonly #functions = new Map<string, FunctionEntry>();
  /** Changes of one function (deploy, update, remove, scale) run one after the other. */
  readonly #changes = new SerialChanges();
  /** Stops in progress (retired replicas), awaited by close(). */
  readonly #stopping = new Set<Promise<void>>();
  #closed = false;

  constructor(options: ProcessProviderOptions) {
    // Absolute: replicas get paths under it (TMPDIR, secrets) and run in other folders.
    this.#stateDir = resolve(options.stateDir);
    this.#repoRoot = options.repoRoot ?? defaultRepoRoot;
    this.#images = options.images;
    this.#baseEnv = options.baseEnv ?? { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' };
    this.#logLines = options.logLines ?? 1000;
    this.#limits = effectiveLimits(
      options,
      'fdLimit' in options ? options.fdLimit : openFileLimit(),
    );
    this.#drainDelayMs = options.drainDelayMs ?? 500;
    this.#logger = options.logger ?? silentLogger;
    this.namespaceStore = new FileNamespaceStore(
      this.#stateDir,
      options.namespace ?? 'openfaas-fn',
      (namespace) =>
        [...this.#functions.values()].some((entry) => entry.record.spec.namespace === namespace),
    );
    this.secrets = this.namespaceStore.secrets;
  }

  /**
   * Brings back the functions saved in stateDir, with their desired replicas, as many as fit the
   * caps (in name order); the others are listed, not ready, until updated, scaled or removed.
   * Never throws for what the state folder holds: the hub always starts.
   */
  async start(): Promise<void> {
    const { maxFunctions, maxReplicas, maxTotalReplicas, fdLimit, lowered } = this.#limits;
    this.#logger.info(
      { maxFunctions, maxReplicas, maxTotalReplicas, fdLimit },
      'process provider limits',
    );
    for (const warning of lowered) this.#logger.warn(warning);
    await this.namespaceStore
      .load((namespace, error) =>
        this.#logger.error(
          { namespace, reason: safeReason(error) },
          'cannot read a saved namespace: skipped',
        ),
      )
      .catch((error: unknown) =>
        this.#logger.error({ reason: safeReason(error) }, 'cannot read the saved namespaces'),
      );
    const records: FunctionRecord[] = [];
    for (const namespace of this.namespaceStore.names()) {
      const space = this.namespaceStore.space(namespace) as NamespaceSpace;
      try {
        const saved = await space.state.loadAll((file, error) =>
          this.#logger.error(
            { file: basename(file), namespace, reason: safeReason(error) },
            'cannot read a saved function: skipped',
          ),
        );
        // Where a record is kept says its namespace, whatever it holds.
        for (const record of saved)
          records.push({ ...record, spec: { ...record.spec, namespace } });
      } catch (error) {
        this.#logger.error(
          { namespace, reason: safeReason(error) },
          'cannot read the saved functions',
        );
      }
    }
    const overCap: string[] = [];
    for (const record of records) {
      const name = record.spec.service;
      const key = joinFunctionName(name, record.spec.namespace);
      if (!isDnsLabel(name) || this.#functions.has(key)) continue;
      const entry = this.#newEntry(record, { env: {}, needsUpstreamPort: false });
      try {
        const { replicas } = record;
        if (!Number.isSafeInteger(replicas) || replicas < 0) {
          throw new ValidationError(`saved replicas ${replicas} is not a whole number`);
        }
        // A saved record is input too (an older hub, a hand edit): checked as a deployment is.
        const spec = normalizeDeployment(record.spec, this.namespaceStore.defaultName);
        entry.record = { ...record, spec: this.#normalize(spec) };
        entry.plan = this.#validate(entry.record.spec);
        if (this.#countedFunctions() >= maxFunctions) {
          entry.notStarted = {
            reason: `over max_functions (${maxFunctions})`,
            cap: 'max_functions',
          };
        } else if (!this.#fits(entry, replicas)) {
          entry.notStarted = {
            reason: `over max_total_replicas (${maxTotalReplicas})`,
            cap: 'max_total_replicas',
          };
        }
        this.#functions.set(key, entry);
        if (entry.notStarted) {
          overCap.push(key);
          continue;
        }
        await onDisk(`cannot copy the secrets of "${name}"`, () =>
          this.#writeSecrets(entry, entry.record.spec.secrets),
        );
        this.#reconcile(entry);
      } catch (error) {
        this.#functions.set(key, entry);
        entry.notStarted = { reason: safeReason(error) };
        this.#logger.error(
          { fn: name, reason: safeReason(error) },
          'cannot bring back a saved function',
        );
      }
    }
    if (overCap.length > 0) {
      this.#logger.warn(
        { functions: overCap.length, first: overCap.slice(0, 10), maxFunctions, maxTotalReplicas },
        'saved functions over the caps were not started (raise max_functions / max_total_replicas or the open-file limit)',
      );
    }
  }

  /** Stops every replica (state stays on disk): for shutdown and tests. */
  async close(): Promise<void> {
    this.#closed = true;
    const stops: Promise<void>[] = [...this.#stopping];
    for (const entry of this.#functions.values()) {
      entry.removed = true;
      entry.logs.close();
      for (const replica of entry.replicas) stops.push(replica.stop());
      entry.replicas = [];
    }
    this.#functions.clear();
    await Promise.all(stops);
  }

  info(): Promise<ProviderInfo> {
    return Promise.resolve({
      provider: 'fnbus-process',
      orchestration: 'process',
      version: { release: version, sha: build.sha, commit_message: build.commitMessage },
    });
  }

  namespaces(): Promise<string[]> {
    return Promise.resolve(this.namespaceStore.names());
  }

  async deploy(given: FunctionDeployment): Promise<void> {
    this.#checkOpen();
    const spec = this.#normalize(given);
    const plan = this.#validate(spec);
    const replicas = this.#minReplicas(spec);
    const name = spec.service;
    const key = joinFunctionName(name, spec.namespace);
    // In its namespace's turn: a removal of the namespace cannot pass between the check and the
    // writes into its folder.
    const inNamespace = (work: () => Promise<void>) =>
      this.namespaceStore.whileExists(spec.namespace, work, () => namespaceMissing(spec.namespace));
    await this.#changes.run(key, () =>
      inNamespace(async () => {
        this.#checkOpen();
        if (this.#functions.has(key)) {
          throw new ConflictError(
            `function "${name}" already exists in namespace "${spec.namespace}"`,
          );
        }
        const { maxFunctions } = this.#limits;
        if (this.#countedFunctions() >= maxFunctions) {
          throw new LimitError(
            `cannot deploy "${name}": ${maxFunctions} functions are deployed, the most this hub takes (max_functions)`,
          );
        }
        const record: FunctionRecord = { spec, replicas, createdAt: new Date().toISOString() };
        const entry = this.#newEntry(record, plan);
        this.#checkTotal(entry, replicas, `cannot deploy "${name}"`);
        await onDisk(`cannot copy the secrets of "${name}"`, () =>
          this.#writeSecrets(entry, spec.secrets),
        );
        this.#functions.set(key, entry);
        try {
          await this.#persist(entry);
        } catch (error) {
          this.#functions.delete(key);
          await rm(this.#runDir(entry), { recursive: true, force: true }).catch(() => {});
          throw error;
        }
        this.#reconcile(entry);
      }),
    );
  }

  async update(given: FunctionDeployment): Promise<void> {
    this.#checkOpen();
    const spec = this.#normalize(given);
    const plan = this.#validate(spec);
    await this.#changes.run(joinFunctionName(spec.service, spec.namespace), async () => {
      this.#checkOpen();
      const entry = this.#entry(spec.service, spec.namespace);
      if (entry.notStarted !== undefined) {
        this.#admit(entry, entry.record.replicas, `cannot start "${spec.service}"`);
      }
      await onDisk(`cannot copy the secrets of "${spec.service}"`, () =>
        this.#writeSecrets(entry, spec.secrets),
      );
      entry.record = { ...entry.record, spec };
      entry.plan = plan;
      entry.generation++;
      entry.notStarted = undefined;
      await this.#persist(entry);
      this.#reconcile(entry);
    });
  }

  async remove(name: string, namespace?: string): Promise<void> {
    await this.#changes.run(this.#key(name, namespace), async () => {
      const entry = this.#entry(name, namespace);
      this.#functions.delete(this.#key(name, namespace));
      entry.removed = true;
      entry.deleted = true;
      const replicas = entry.replicas;
      entry.replicas = [];
      await entry.saving.catch(() => {});
      try {
        await onDisk(`cannot remove the saved state of "${name}"`, () =>
          this.#space(entry).state.remove(name),
        );
      } finally {
        // Whatever happens, its processes stop and its files go before the next change of the name.
        await Promise.all(replicas.map((replica) => replica.stop()));
        entry.logs.close();
        await rm(this.#runDir(entry), { recursive: true, force: true }).catch((error: unknown) =>
          this.#logger.error({ fn: name, reason: safeReason(error) }, 'cannot remove its files'),
        );
      }
    });
  }

  list(namespace?: string): Promise<FunctionStatus[]> {
    const wanted = namespace || this.namespaceStore.defaultName;
    return Promise.resolve(
      [...this.#functions.values()]
        .filter((entry) => entry.record.spec.namespace === wanted)
        .sort((a, b) => a.record.spec.service.localeCompare(b.record.spec.service))
        .map((entry) => this.#status(entry)),
    );
  }

  get(name: string, namespace?: string): Promise<FunctionStatus | undefined> {
    const entry = this.#functions.get(this.#key(name, namespace));
    return Promise.resolve(entry && this.#status(entry));
  }

  async scale(name: string, replicas: number, namespace?: string): Promise<void> {
    const { maxReplicas } = this.#limits;
    if (!Number.isInteger(replicas) || replicas < 0 || replicas > maxReplicas) {
      throw new ValidationError(
        `replicas must be a whole number from 0 to ${maxReplicas} (max_replicas_per_function), not ${replicas}`,
      );
    }
    await this.#changes.run(this.#key(name, namespace), async () => {
      const entry = this.#entry(name, namespace);
      this.#admit(entry, replicas, `cannot scale "${name}" to ${replicas}`);
      entry.record = { ...entry.record, replicas };
      await this.#persist(entry);
      // A function kept from the state folder over a cap starts once it fits (an invalid one
      // waits for an update).
      if (entry.notStarted?.cap !== undefined) entry.notStarted = undefined;
      this.#reconcile(entry);
    });
  }

  resolve(name: string, namespace?: string): Promise<URL> {
    try {
      return Promise.resolve(new URL(this.resolveLocal(name, namespace).url));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** The next ready replica, round-robin; every replica serves inside this process. */
  resolveLocal(name: string, namespace?: string): Replica {
    const entry = this.#entry(name, namespace);
    if (entry.notStarted !== undefined) {
      // Not an UnavailableError: waiting (scale from zero) would not help.
      throw new NotStartedError(`function "${name}" is not started: ${entry.notStarted.reason}`);
    }
    const { replicas } = entry;
    // A scan from the cursor rather than a filtered copy: this runs on every call.
    for (let tried = 0; tried < replicas.length; tried++) {
      const replica = replicas[entry.cursor++ % replicas.length] as Replica;
      if (entry.cursor >= Number.MAX_SAFE_INTEGER) entry.cursor = 0;
      if (replica.ready) return replica;
    }
    // Every replica up, none able to run its command: waiting (scale from zero) would not help.
    const problem = replicas[0]?.startProblem;
    if (problem !== undefined && replicas.every((replica) => replica.startProblem !== undefined)) {
      throw new NotStartedError(`function "${name}" ${problem}`);
    }
    throw new UnavailableError(`function "${name}" has no ready replica`);
  }

  async *logs(req: LogRequest, signal: AbortSignal): AsyncIterable<LogMessage> {
    const entry = this.#entry(req.name, req.namespace);
    const since = req.since?.getTime();
    const matches = (line: LogLine): boolean =>
      (req.instance === undefined || req.instance === line.instance) &&
      (since === undefined || line.at >= since);
    const queue: LogLine[] = [];
    let ended = false;
    let wake: (() => void) | undefined;
    // Subscribed before the snapshot is taken (same tick): no line is lost or seen twice.
    const unsubscribe = req.follow
      ? entry.logs.subscribe((line) => {
          if (line === closedLine) ended = true;
          else if (matches(line)) {
            queue.push(line);
            // A follower that does not read is not allowed to grow without bound.
            if (queue.length > this.#logLines) queue.shift();
          }
          wake?.();
        })
      : undefined;
    const onAbort = (): void => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      let lines = entry.logs.snapshot().filter(matches);
      if (req.tail !== undefined) lines = lines.slice(Math.max(0, lines.length - req.tail));
      for (const line of lines) {
        if (signal.aborted) return;
        yield this.#message(entry, line);
      }
      while (req.follow && !signal.aborted && !ended) {
        const line = queue.shift();
        if (line) {
          yield this.#message(entry, line);
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      unsubscribe?.();
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The replicas of a function as they are now (diagnostics, tests). */
  instances(name: string, namespace?: string): ReplicaInfo[] {
    return this.#entry(name, namespace).replicas.map((replica) => ({
      instance: replica.instance,
      generation: replica.generation,
      pid: replica.pid,
      ready: replica.ready,
      url: replica.ready ? replica.url : undefined,
      restarts: replica.restarts,
    }));
  }

  #message(entry: FunctionEntry, line: LogLine): LogMessage {
    return {
      name: entry.record.spec.service,
      namespace: entry.record.spec.namespace ?? this.namespaceStore.defaultName,
      instance: line.instance,
      timestamp: line.timestamp,
      text: line.text,
    };
  }

  /**
   * Brings the pool to the desired count of current-generation replicas, and retires older
   * generations once enough current ones are ready (an update never leaves the pool empty).
   */
  #reconcile(entry: FunctionEntry): void {
    if (entry.removed || this.#closed || entry.notStarted !== undefined) return;
    const desired = entry.record.replicas;
    const current = entry.replicas.filter((replica) => replica.generation === entry.generation);
    while (current.length < desired) {
      const replica = this.#startReplica(entry);
      current.push(replica);
      entry.replicas.push(replica);
    }
    if (current.length > desired) {
      // Not-ready ones first, then the newest: the ones serving longest stay.
      const surplus = [...current]
        .reverse()
        .sort((a, b) => Number(a.ready) - Number(b.ready))
        .slice(0, current.length - desired);
      for (const replica of surplus) this.#retire(entry, replica);
    }
    const older = entry.replicas.filter((replica) => replica.generation < entry.generation);
    const currentReady = entry.replicas.filter(
      (replica) => replica.generation === entry.generation && replica.ready,
    ).length;
    if (older.length > 0 && currentReady >= desired) {
      for (const replica of older) this.#retire(entry, replica);
    }
  }

  /** Takes a replica out of the pool now; stops it after drainDelayMs if it was serving. */
  #retire(entry: FunctionEntry, replica: Replica): void {
    entry.replicas = entry.replicas.filter((other) => other !== replica);
    const delayMs = replica.ready ? this.#drainDelayMs : 0;
    const stopped = new Promise<void>((resolve) => setTimeout(resolve, delayMs))
      .then(() => replica.stop())
      .finally(() => this.#stopping.delete(stopped));
    this.#stopping.add(stopped);
  }

  #startReplica(entry: FunctionEntry): Replica {
    const name = entry.record.spec.service;
    const instance = `${name}-${randomBytes(4).toString('hex')}`;
    const replica = new Replica({
      instance,
      generation: entry.generation,
      plan: { ...entry.plan, env: withSecretsPath(entry.plan.env, this.#secretsDir(entry)) },
      baseEnv: this.#baseEnv,
      extraEnv: { [SecretsPathEnv]: this.#secretsDir(entry) },
      workDir: join(this.#runDir(entry), instance),
      onLine: (from, text) => entry.logs.push(from, text),
      onReadyChange: () => this.#reconcile(entry),
      logger: this.#logger.child({ fn: name, instance }),
    });
    replica.start();
    return replica;
  }

  #newEntry(record: FunctionRecord, plan: LaunchPlan): FunctionEntry {
    return {
      record,
      plan,
      generation: 1,
      replicas: [],
      logs: new LogRing(this.#logLines),
      cursor: 0,
      removed: false,
      deleted: false,
      saving: Promise.resolve(),
      notStarted: undefined,
    };
  }

  #status(entry: FunctionEntry): FunctionStatus {
    const { spec, replicas, createdAt } = entry.record;
    const status: FunctionStatus = {
      name: spec.service,
      image: spec.image,
      namespace: spec.namespace,
      envProcess: spec.envProcess,
      envVars: spec.envVars,
      constraints: spec.constraints,
      secrets: spec.secrets,
      labels: spec.labels,
      annotations: spec.annotations,
      limits: spec.limits,
      requests: spec.requests,
      readOnlyRootFilesystem: spec.readOnlyRootFilesystem,
      replicas,
      availableReplicas: entry.replicas.filter((replica) => replica.ready).length,
      createdAt,
    };
    for (const key of Object.keys(status) as (keyof FunctionStatus)[]) {
      if (status[key] === undefined) delete status[key];
    }
    return status;
  }

  /**
   * What to run for a spec (already checked by normalizeDeployment, in core): the launch plan,
   * with the watchdog's settings checked now, so a bad one is refused, not a crash loop later.
   */
  #validate(spec: FunctionDeployment): LaunchPlan {
    const plan = planLaunch(spec, this.#repoRoot, this.#images);
    const upstream: StringMap = plan.needsUpstreamPort
      ? { upstream_url: 'http://127.0.0.1:1' }
      : {};
    replicaConfig({ ...this.#baseEnv, ...plan.env, ...upstream });
    return plan;
  }

  /** Replicas at deploy: the scale rules' minimum (core/function-rules.ts), within the cap. */
  #minReplicas(spec: FunctionDeployment): number {
    const { min } = scaleRules(spec).rules;
    const { maxReplicas } = this.#limits;
    if (min > maxReplicas) {
      throw new ValidationError(
        `${OpenFaasAnnotation.ScaleMin} must be a whole number from 0 to ${maxReplicas} (max_replicas_per_function), not ${min}`,
      );
    }
    return min;
  }

  /**
   * The spec as stored, from one normalizeDeployment made (the gateway, `fnbus up`): its name is a
   * file name here, so checked again; the namespace must be this provider's and is made explicit.
   */
  #normalize(spec: FunctionDeployment): FunctionDeployment {
    assertDnsLabel(spec.service ?? '', 'function name');
    const space = this.namespaceStore.space(spec.namespace);
    if (!space) throw namespaceMissing(spec.namespace);
    return { ...spec, image: spec.image ?? '', namespace: space.namespace.name };
  }

  /** Desired replicas of every running function but `except`. */
  #totalReplicas(except: FunctionEntry): number {
    let total = 0;
    for (const entry of this.#functions.values()) {
      if (entry !== except && entry.notStarted === undefined) total += entry.record.replicas;
    }
    return total;
  }

  #fits(entry: FunctionEntry, replicas: number): boolean {
    return this.#totalReplicas(entry) + replicas <= this.#limits.maxTotalReplicas;
  }

  /** Functions that count against max_functions: all but those kept over it. */
  #countedFunctions(): number {
    let count = 0;
    for (const entry of this.#functions.values()) {
      if (entry.notStarted?.cap !== 'max_functions') count++;
    }
    return count;
  }

  /** A LimitError (409) unless `entry`, kept from the state folder over a cap, and `replicas` fit now. */
  #admit(entry: FunctionEntry, replicas: number, what: string): void {
    const { maxFunctions } = this.#limits;
    if (entry.notStarted?.cap === 'max_functions' && this.#countedFunctions() >= maxFunctions) {
      throw new LimitError(
        `${what}: ${maxFunctions} functions run, the most this hub takes (max_functions)`,
      );
    }
    this.#checkTotal(entry, replicas, what);
  }

  /** A LimitError (409) unless `replicas` more for `entry` fit under max_total_replicas. */
  #checkTotal(entry: FunctionEntry, replicas: number, what: string): void {
    if (this.#fits(entry, replicas)) return;
    const { maxTotalReplicas } = this.#limits;
    throw new LimitError(
      `${what}: ${this.#totalReplicas(entry)} of ${maxTotalReplicas} replicas are taken (max_total_replicas)`,
    );
  }

  /** Saves the entry's current record, after any write in progress; never once it is deleted. */
  async #persist(entry: FunctionEntry): Promise<void> {
    const name = entry.record.spec.service;
    const write = async (): Promise<void> => {
      if (!entry.deleted) {
        await onDisk(`cannot save function "${name}"`, () =>
          this.#space(entry).state.save(entry.record),
        );
      }
    };
    const next = entry.saving.then(write, write);
    entry.saving = next;
    await next;
  }

  async #writeSecrets(entry: FunctionEntry, secrets: readonly string[] | undefined): Promise<void> {
    await this.#space(entry).secrets.materialize(secrets ?? [], this.#secretsDir(entry));
  }

  #entry(name: string, namespace: string | undefined): FunctionEntry {
    const entry = this.#functions.get(this.#key(name, namespace));
    if (!entry) {
      throw new NotFoundError(
        `function "${name}" not found in namespace "${namespace || this.namespaceStore.defaultName}"`,
      );
    }
    return entry;
  }

  /** The key of a function in #functions and #changes. */
  #key(name: string, namespace: string | undefined): string {
    return joinFunctionName(name, namespace || this.namespaceStore.defaultName);
  }

  /** The folders of a function's namespace (it exists while the function does). */
  #space(entry: FunctionEntry): NamespaceSpace {
    const space = this.namespaceStore.space(entry.record.spec.namespace);
    if (!space) throw new NotFoundError(`namespace "${entry.record.spec.namespace}" not found`);
    return space;
  }

  #checkOpen(): void {
    if (this.#closed) throw new UnavailableError('the process provider is closed');
  }

  #runDir(entry: FunctionEntry): string {
    return join(this.#space(entry).root, 'run', entry.record.spec.service);
  }

  #secretsDir(entry: FunctionEntry): string {
    return join(this.#runDir(entry), 'secrets');
  }
}

function namespaceMissing(namespace: string | undefined): ValidationError {
  return new ValidationError(
    `namespace "${namespace}" does not exist: create it first (POST /system/namespace/)`,
  );
}
