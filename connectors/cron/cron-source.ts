import { scheduleOf } from '../../core/function-rules.js';
import { CronTopic } from '../../core/openfaas-names.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Histogram, type Registry } from 'prom-client';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { Source, SourceEvent } from '../../core/source.js';
import type { InvokerResponse } from '../sdk/controller.js';
import type { TopicMap, TopicTarget } from '../sdk/topic-map.js';
import type { FiringLedger } from './firing-ledger.js';
import { parseSchedules, type Schedule } from './schedule.js';

/** Annotations a cron function may carry besides `topic: cron-function` and `schedule`. */
export const CronAnnotation = {
  /** IANA time zone the schedule is read in; default UTC. */
  TimeZone: 'fnbus.cron.timezone',
  /** `allow` (default): fire whatever runs; `skip`: not while the last firing's call runs. */
  Overlap: 'fnbus.cron.overlap',
  /** `skip` (default): slots missed while no replica ran are lost; `catch-up`: fired late. */
  Missed: 'fnbus.cron.missed',
} as const;

/** On every firing: the slot it is for (RFC 3339, ms), and the schedule as written. */
export const ScheduledTimeHeader = 'X-Scheduled-Time';
export const ScheduleHeader = 'X-Schedule';

export interface CronSourceOptions {
  /** The map in use now: cron functions are those taking the topic `cron-function`. */
  topicMap: () => TopicMap | undefined;
  /** Where slots are claimed and last firings kept; the source closes it when it stops. */
  ledger: FiringLedger;
  /** A queued call's state (`/system/calls/<id>`), for `skip` overlap on async invocation. */
  callState?: (callId: string) => Promise<string | undefined>;
  /** How often the map is looked at for cron functions come and gone; default 1 s. */
  reconcileEveryMs?: number;
  /** Where `fnbus_cron_firing_lateness_seconds` goes: how late each firing's call went out. */
  registry?: Registry;
  logger?: Logger;
}

/** Most slots one catch-up fires; older ones are dropped (and logged). */
const maxCatchUp = 100;
/** How long a slot's claim lasts: far longer than any clock skew between replicas. */
const claimTtlMs = 10 * 60_000;
/** How long before a slot its timer wakes, to wait out the rest precisely. */
const earlyWakeMs = 2;
/** A timer is never set further ahead than this (setTimeout's limit is ~24.8 days). */
const maxTimerMs = 24 * 3600_000;

interface Entry {
  /** The schedule's identity across replicas: function, schedule, zone. */
  id: string;
  /** `id` plus the policies: a change of any re-arms the entry. */
  version: string;
  target: TopicTarget;
  schedule: Schedule;
  overlap: 'allow' | 'skip';
  missed: 'skip' | 'catch-up';
  nextSlotMs: number;
  timer?: NodeJS.Timeout;
  /** The last firing's delivery, while it runs. */
  running?: Promise<unknown>;
  /** The last firing's async call, for `skip` overlap. */
  lastCallId?: string;
}

/**
 * Fires cron functions on their schedules: each firing is an event emitted for its one function
 * (so it goes through the gateway: a function at zero replicas is scaled up by it). Each slot
 * fires once across every replica sharing the ledger: each replica claims the slot, and only the
 * winner emits. Functions deployed, changed or removed are picked up from the topic map.
 */
export class CronSource implements Source<InvokerResponse[]> {
  readonly #options: Required<Omit<CronSourceOptions, 'callState' | 'registry'>> &
    Pick<CronSourceOptions, 'callState'>;
  readonly #lateness: Histogram | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #problems = new Set<string>();
  /** The map the entries were last made from. */
  #reconciled: TopicMap | undefined;
  /** Parsed schedules by zone and text: a rebuilt map mostly holds the same ones. */
  readonly #parsed = new Map<string, Schedule[]>();
  #signal: AbortSignal = AbortSignal.abort();
  #emit: (event: SourceEvent) => Promise<InvokerResponse[]> = () => Promise.resolve([]);
  /** Firings whose calls are out. */
  readonly #firing = new Set<Promise<void>>();

  constructor(options: CronSourceOptions) {
    this.#options = { reconcileEveryMs: 1000, logger: silentLogger, ...options };
    this.#lateness =
      options.registry &&
      new Histogram({
        name: 'fnbus_cron_firing_lateness_seconds',
        help: 'How long after its slot a cron firing’s call went out (claim included)',
        buckets: [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
        registers: [options.registry],
      });
  }

  /**
   * Fires until `signal` aborts; then waits for the firings in flight (the runtime cuts them if
   * they take too long) and closes the ledger.
   */
  async start(
    emit: (event: SourceEvent) => Promise<InvokerResponse[]>,
    signal: AbortSignal,
  ): Promise<void> {
    this.#signal = signal;
    this.#emit = emit;
    try {
      while (!signal.aborted) {
        await this.#reconcile();
        await sleep(this.#options.reconcileEveryMs, undefined, { signal }).catch(() => {});
      }
      for (const entry of this.#entries.values()) clearTimeout(entry.timer);
      this.#entries.clear();
      await Promise.allSettled([...this.#firing]);
    } finally {
      await this.#options.ledger.close();
    }
  }

  /** Arms the schedules of cron functions new or changed, and disarms those gone. */
  async #reconcile(): Promise<void> {
    // A map is immutable: the same one as last time needs no look (parsing costs a timer's worth).
    const map = this.#options.topicMap();
    if (map === undefined || map === this.#reconciled) return;
    this.#reconciled = map;
    const wanted = new Map<string, Omit<Entry, 'nextSlotMs'>>();
    for (const target of map.match(CronTopic)) {
      for (const entry of this.#entriesOf(target)) wanted.set(entry.id, entry);
    }
    for (const [id, entry] of this.#entries) {
      if (wanted.get(id)?.version === entry.version) continue;
      clearTimeout(entry.timer);
      this.#entries.delete(id);
    }
    for (const [id, fresh] of wanted) {
      if (this.#entries.has(id)) continue;
      const entry: Entry = { ...fresh, nextSlotMs: fresh.schedule.next(Date.now()) };
      this.#entries.set(id, entry);
      if (entry.missed === 'catch-up') await this.#catchUp(entry);
      this.#arm(entry);
    }
  }

  #entriesOf(target: TopicTarget): Omit<Entry, 'nextSlotMs'>[] {
    const annotations = target.annotations;
    const text = scheduleOf(target);
    const zone = annotations[CronAnnotation.TimeZone]?.trim() || 'UTC';
    const overlap = annotations[CronAnnotation.Overlap]?.trim() || 'allow';
    const missed = annotations[CronAnnotation.Missed]?.trim() || 'skip';
    const problem = (message: string) => {
      const key = `${target.function}: ${message}`;
      if (!this.#problems.has(key)) {
        this.#problems.add(key);
        this.#options.logger.warn({ function: target.function }, `not scheduled: ${message}`);
      }
      return [];
    };
    if (text === undefined) return problem('no schedule annotation');
    if (overlap !== 'allow' && overlap !== 'skip') {
      return problem(`${CronAnnotation.Overlap}: "${overlap}" is neither allow nor skip`);
    }
    if (missed !== 'skip' && missed !== 'catch-up') {
      return problem(`${CronAnnotation.Missed}: "${missed}" is neither skip nor catch-up`);
    }
    let schedules = this.#parsed.get(`${zone}\n${text}`);
    if (!schedules) {
      try {
        schedules = parseSchedules(text, zone);
      } catch (error) {
        return problem((error as Error).message);
      }
      this.#parsed.set(`${zone}\n${text}`, schedules);
    }
    return schedules.map((schedule) => {
      const id = `${target.function}|${schedule.text}|${zone}`;
      return { id, version: `${id}|${overlap}|${missed}`, target, schedule, overlap, missed };
    });
  }

  /**
   * Wakes up for the entry's next slot: a timer to ~2 ms before it (timers are late by a
   * millisecond or so, and wake no earlier than asked), then the event loop's next turns until the
   * slot's millisecond.
   */
  #arm(entry: Entry): void {
    const delayMs = entry.nextSlotMs - Date.now();
    if (delayMs > earlyWakeMs) {
      entry.timer = setTimeout(
        () => this.#onTimer(entry),
        Math.min(delayMs - earlyWakeMs, maxTimerMs),
      );
    } else {
      entry.timer = undefined;
      setImmediate(() => this.#onTimer(entry));
    }
  }

  #onTimer(entry: Entry): void {
    if (this.#entries.get(entry.id) !== entry || this.#signal.aborted) return;
    if (Date.now() < entry.nextSlotMs) return this.#arm(entry);
    const slotMs = entry.nextSlotMs;
    const firing = this.#fire(entry, slotMs);
    this.#firing.add(firing);
    const forget = () => this.#firing.delete(firing);
    void firing.then(forget, forget);
    // The next slot once every firing of this moment is on its way (computing one takes a while).
    setImmediate(() => {
      if (this.#entries.get(entry.id) !== entry) return;
      // Slots that passed while this process could not run (a pause, a blocked loop) are
      // skipped; catching up is only done for downtime, and only when asked.
      const now = Date.now();
      let next = entry.schedule.next(slotMs);
      if (next <= now) next = entry.schedule.next(now);
      entry.nextSlotMs = next;
      this.#arm(entry);
    });
  }

  /** Fires the slots missed since the last firing any replica recorded (catch-up). */
  async #catchUp(entry: Entry): Promise<void> {
    const { ledger, logger } = this.#options;
    const last = await ledger.lastFired(entry.id).catch(() => undefined);
    if (last === undefined) return;
    const missed: number[] = [];
    for (let slot = entry.schedule.next(last); slot < entry.nextSlotMs;) {
      missed.push(slot);
      slot = entry.schedule.next(slot);
      if (missed.length > maxCatchUp) missed.shift();
    }
    if (missed.length === 0) return;
    logger.info({ function: entry.target.function, slots: missed.length }, 'catching up');
    for (const slot of missed) await this.#fire(entry, slot, false);
  }

  async #fire(entry: Entry, slotMs: number, onTime = true): Promise<void> {
    const { ledger, logger } = this.#options;
    const where = {
      function: entry.target.function,
      schedule: entry.schedule.text,
      slot: new Date(slotMs).toISOString(),
    };
    let marked: Promise<void>;
    try {
      if (!(await ledger.claim(`${entry.id}@${slotMs}`, claimTtlMs))) return; // another replica's
      if (entry.overlap === 'skip' && (await this.#stillRunning(entry))) {
        logger.info(where, 'skipped: the last firing still runs');
        await ledger.markFired(entry.id, slotMs);
        return;
      }
      // Recorded while the call goes out, not before: the firing waits for nothing but its claim.
      marked = ledger.markFired(entry.id, slotMs).catch((error: unknown) => {
        logger.warn({ ...where, err: error }, 'last firing not recorded');
      });
    } catch (error) {
      logger.error({ ...where, err: error }, 'cannot claim the slot: not fired');
      return;
    }
    const event: SourceEvent = {
      topic: CronTopic,
      functions: [entry.target.function],
      body: new Uint8Array(),
      headers: {
        [ScheduledTimeHeader]: new Date(slotMs).toISOString(),
        [ScheduleHeader]: entry.schedule.text,
      },
    };
    if (onTime) this.#lateness?.observe((Date.now() - slotMs) / 1000);
    const delivery = this.#emit(event);
    entry.running = delivery;
    try {
      const responses: InvokerResponse[] = await delivery;
      const callId = responses[0]?.async ? responses[0].headers['x-call-id'] : undefined;
      entry.lastCallId = typeof callId === 'string' ? callId : undefined;
    } catch (error) {
      logger.warn({ ...where, err: error }, 'firing not delivered');
    } finally {
      if (entry.running === delivery) entry.running = undefined;
      await marked;
    }
  }

  async #stillRunning(entry: Entry): Promise<boolean> {
    if (entry.running) return true;
    const { callState } = this.#options;
    if (!entry.lastCallId || !callState) return false;
    const state = await callState(entry.lastCallId).catch(() => undefined);
    return state === 'queued' || state === 'running';
  }
}
