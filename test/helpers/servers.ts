import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './http.js';
import { waitFor } from './wait.js';
import { makeTempDir } from './watchdog.js';

/** A real server process started for a test file, on a free loopback port. */
export interface RunningServer {
  port: number;
  /** `redis://127.0.0.1:N`, `nats://127.0.0.1:N` or `mqtt://127.0.0.1:N`. */
  url: string;
  /**
   * SIGKILL (or `signal`: SIGTERM lets it save its state), then the same server again on the same
   * port and data folder.
   */
  restart(signal?: NodeJS.Signals): Promise<void>;
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
  dir = makeTempDir(`fnbus-${scheme}-`),
): Promise<RunningServer> {
  const port = await freePort();
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
    async restart(signal: NodeJS.Signals = 'SIGKILL') {
      await kill(signal);
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

/** A mosquitto started by startMosquitto, with the listeners asked for. */
export interface RunningMosquitto extends RunningServer {
  /** A listener that takes only `credentials` (`mqtt://127.0.0.1:N`). */
  authUrl?: string;
  /** A TLS listener that wants a client certificate (`mqtts://127.0.0.1:N`). */
  tlsUrl?: string;
  /** The CA that signed the broker's certificate, and a client's certificate and key (files). */
  tlsFiles?: { ca: string; cert: string; key: string };
}

export interface MosquittoOptions {
  /** A second listener, taking only these. */
  credentials?: { user: string; password: string };
  /** A TLS listener: certificates made with openssl for 127.0.0.1 by a CA of the test's own. */
  tls?: boolean;
}

/**
 * Debian's mosquitto on a loopback port, anonymous, with persistence in a temp folder saved on
 * every change, so that persistent sessions (subscriptions, queued QoS 1/2 messages) survive a
 * restart, a SIGKILL included; and the listeners `options` ask for.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<RunningMosquitto> {
  const dir = makeTempDir('fnbus-mqtt-');
  const { credentials } = options;
  const authPort = credentials ? await freePort() : undefined;
  const tlsPort = options.tls ? await freePort() : undefined;
  if (credentials) {
    execFileSync('mosquitto_passwd', [
      '-b',
      '-c',
      join(dir, 'passwd'),
      credentials.user,
      credentials.password,
    ]);
  }
  const tlsFiles = options.tls ? makeCertificates(dir) : undefined;
  const server = await startServer(
    'mqtt',
    '/usr/sbin/mosquitto',
    (port) => {
      const config = join(dir, 'mosquitto.conf');
      writeFileSync(
        config,
        [
          // Run as root, mosquitto would drop to its own user, who cannot write here.
          `user ${userInfo().username}`,
          'per_listener_settings true',
          'persistence true',
          `persistence_location ${dir}/`,
          'autosave_interval 1',
          'autosave_on_changes true',
          // A persistent session's messages kept while its client is away: all (mosquitto's
          // default keeps 1,000 and drops the rest, a loss no connector could prevent).
          'max_queued_messages 0',
          'log_dest stdout',
          `listener ${port} 127.0.0.1`,
          'allow_anonymous true',
          ...(authPort
            ? [
                `listener ${authPort} 127.0.0.1`,
                'allow_anonymous false',
                `password_file ${join(dir, 'passwd')}`,
              ]
            : []),
          ...(tlsPort && tlsFiles
            ? [
                `listener ${tlsPort} 127.0.0.1`,
                'allow_anonymous true',
                `cafile ${tlsFiles.ca}`,
                `certfile ${join(dir, 'server.pem')}`,
                `keyfile ${join(dir, 'server.key')}`,
                'require_certificate true',
              ]
            : []),
          '',
        ].join('\n'),
      );
      return ['-c', config];
    },
    dir,
  );
  return {
    ...server,
    ...(authPort ? { authUrl: `mqtt://127.0.0.1:${authPort}` } : {}),
    ...(tlsPort && tlsFiles ? { tlsUrl: `mqtts://127.0.0.1:${tlsPort}`, tlsFiles } : {}),
  };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate it signed, in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ecKey,
    '-days',
    '1',
    '-subj',
    '/CN=fnbus-test-ca',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  writeFileSync(file('san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, cn, extra] of [
    ['server', '127.0.0.1', ['-extfile', file('san.cnf')]],
    ['client', 'fnbus-connector', []],
  ] as const) {
    openssl(
      'req',
      ...ecKey,
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      file(`${name}.pem`),
      ...extra,
    );
  }
  return { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') };
}
