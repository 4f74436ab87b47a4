import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'undici';

/** Starts a long-running process for a benchmark; its output is discarded unless it fails. */
export function startProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): ChildProcess {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.once('exit', (code, signal) => {
    // Asked to stop: nats-server 2.9 answers SIGTERM with exit code 1.
    if (stopping.has(child)) return;
    if (code !== null && code !== 0) process.stderr.write(`${command} exited ${code}: ${stderr}\n`);
    else if (signal && signal !== 'SIGTERM' && signal !== 'SIGKILL')
      process.stderr.write(`${command}: ${signal}\n`);
  });
  return child;
}

/** Children stopProcess was asked to stop: how they end is not a failure. */
const stopping = new WeakSet<ChildProcess>();

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  stopping.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(killer);
}

/** Waits until something accepts connections on the port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(20);
  }
  throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

/** Peak resident memory of processes (VmHWM from /proc), added up, in MB. */
export async function peakRssMb(...pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    total += Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  }
  return total / 1024;
}

/** The helper processes a watchdog keeps (fnbus-spawner), whose memory is the watchdog's too. */
export async function helperPids(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const pids = children.split(' ').filter(Boolean).map(Number);
  const names = await Promise.all(
    pids.map((child) => readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')),
  );
  return pids.filter((_, i) => names[i]?.trim() === 'fnbus-spawner');
}

/** A JSON call to a gateway over `pool`: its status and body text. */
export async function gatewayApi(
  pool: Pool,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const res = await pool.request({
    method,
    path,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

/** The value at percentile `p` of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Until `check` holds, looking every `everyMs`; throws after `timeoutMs`. */
export async function until(
  check: () => Promise<boolean>,
  what: string,
  { timeoutMs = 300_000, everyMs = 20 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * CPU seconds (user + system) used so far by `pids` and every live process below them, from
 * /proc: what a run cost the machine, which stays comparable when other work shares the cores
 * and rates do not.
 */
export async function cpuSeconds(...pids: number[]): Promise<number> {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // After the command's name in parentheses: state, ppid, ... utime (14th), stime (15th).
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(entry), {
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    });
  }
  const wanted = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, { ppid }] of stats) {
      if (!wanted.has(pid) && wanted.has(ppid)) {
        wanted.add(pid);
        grew = true;
      }
    }
  }
  let ticks = 0;
  for (const pid of wanted) ticks += stats.get(pid)?.ticks ?? 0;
  return ticks / 100; // USER_HZ: 100 on Linux
}
