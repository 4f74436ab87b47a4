import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { freePort } from './http.js';
import { waitFor } from './wait.js';
import { makeTempDir } from './watchdog.js';

/** A real server process started for a test file, on a free loopback port. */
export interface RunningServer {
  port: number;
  /** `redis://127.0.0.1:N` or `nats://127.0.0.1:N`. */
  url: string;
  /** SIGKILL, then the same server again on the same port and data folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function startServer(
  scheme: string,
  command: string,
  args: (port: number, dir: string) => string[],
): Promise<RunningServer> {
  const port = await freePort();
  const dir = makeTempDir(`fnbus-${scheme}-`);
  let child: ChildProcess;
  let output = '';
  const launch = async () => {
    output = '';
    child = spawn(command, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', () => running.delete(child));
    await waitFor(() => child.exitCode === null && canConnect(port), {
      timeoutMs: 10_000,
      what: `${command} on port ${port} (output so far: ${output})`,
    });
  };
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  };
  await launch();
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    async restart() {
      await kill('SIGKILL');
      await launch();
    },
    stop: () => kill('SIGTERM'),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Debian's redis-server, its data in a temp folder (append-only file on: restarts keep data). */
export function startRedis(): Promise<RunningServer> {
  return startServer('redis', 'redis-server', (port, dir) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--save',
    '',
  ]);
}

/** Debian's nats-server with JetStream, its store in a temp folder (restarts keep streams). */
export function startNats(): Promise<RunningServer> {
  return startServer('nats', 'nats-server', (port, dir) => [
    '-js',
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-sd',
    dir,
  ]);
}
