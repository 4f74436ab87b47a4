import { readdirSync, readFileSync } from 'node:fs';
import type { Pool } from 'undici';
import { cpuSeconds } from './processes.js';

/**
 * What the connector benches measure beside their rates: the CPU a unit of work cost each of
 * the hub's threads, its functions and the broker, and how busy the hub's main thread was; and
 * the gateway's synchronous rate for the same function.
 */

/** CPU ticks of each of the process's threads: `main`, the others by order of creation. */
export function threadTicks(pid: number): Map<string, number> {
  const ticks = new Map<string, number>();
  const tids = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
  for (const [index, tid] of tids.entries()) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(index === 0 ? 'main' : `t${index}`, Number(fields[11]) + Number(fields[12]));
    } catch {
      // The thread ended.
    }
  }
  return ticks;
}

/** Where a stretch of work spent CPU: the hub's threads, its functions, the broker, others. */
export async function cpuSnapshot(hubPid: number, others: Record<string, number>) {
  const children = readFileSync(`/proc/${hubPid}/task/${hubPid}/children`, 'utf8')
    .split(' ')
    .filter(Boolean)
    .map(Number);
  const outside: Record<string, number> = {};
  for (const [name, pid] of Object.entries(others)) outside[name] = await cpuSeconds(pid);
  return {
    threads: threadTicks(hubPid),
    functions: children.length > 0 ? await cpuSeconds(...children) : 0,
    schedstat: readFileSync(`/proc/${hubPid}/task/${hubPid}/schedstat`, 'utf8')
      .split(' ')
      .slice(0, 2)
      .map(Number),
    at: performance.now(),
    outside,
  };
}

export type Snapshot = Awaited<ReturnType<typeof cpuSnapshot>>;

export function cpuPer(before: Snapshot, after: Snapshot, units: number): Record<string, number> {
  const per = (seconds: number) => (seconds * 1e6) / Math.max(units, 1);
  const out: Record<string, number> = {};
  for (const [name, ticks] of after.threads) {
    out[`hub ${name}`] = per((ticks - (before.threads.get(name) ?? 0)) / 100);
  }
  out.functions = per(after.functions - before.functions);
  for (const [name, seconds] of Object.entries(after.outside)) {
    out[name] = per(seconds - (before.outside[name] ?? 0));
  }
  return out;
}

/** How the hub's main thread spent a stretch: on a core, runnable but waiting for one, idle. */
export function mainThread(before: Snapshot, after: Snapshot) {
  const wallNs = (after.at - before.at) * 1e6;
  const running = ((after.schedstat[0] ?? 0) - (before.schedstat[0] ?? 0)) / wallNs;
  const waiting = ((after.schedstat[1] ?? 0) - (before.schedstat[1] ?? 0)) / wallNs;
  return { running, waiting, idle: Math.max(0, 1 - running - waiting) };
}

/** POSTs to `/function/<name>` from `connections` connections for `seconds`: answers a second. */
export async function syncLoad(
  pool: Pool,
  name: string,
  seconds: number,
  connections: number,
  body: string,
): Promise<number> {
  let answered = 0;
  const startedAt = performance.now();
  const end = startedAt + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const res = await pool.request({ method: 'POST', path: `/function/${name}`, body });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`/function/${name} answered ${res.statusCode}`);
        answered += 1;
      }
    }),
  );
  return answered / ((performance.now() - startedAt) / 1000);
}

/**
 * CPU a unit of work by part (those at 2 µs or more, largest first), and how the hub's main
 * thread spent the time: running, waiting for a core (the machine is busy), idle (waiting on
 * the function, the broker, or work to come).
 */
export function cpuLine(
  label: string,
  cpu: Record<string, number>,
  main: ReturnType<typeof mainThread>,
): string {
  const total = Object.values(cpu).reduce((sum, us) => sum + us, 0);
  const shown = Object.entries(cpu)
    .filter(([, us]) => us >= 2)
    .sort((a, b) => b[1] - a[1])
    .map(([part, us]) => `${part} ${us.toFixed(0)}`);
  const pct = (share: number) => `${(share * 100).toFixed(0)}%`;
  return (
    `            ${label}: ${total.toFixed(0)} µs (${shown.join(', ')});` +
    ` hub main thread ${pct(main.running)} running, ${pct(main.waiting)} waiting for a core,` +
    ` ${pct(main.idle)} idle`
  );
}
