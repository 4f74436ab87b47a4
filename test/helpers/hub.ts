import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicAuthorization } from '../../client/gateway-client.js';
import { cliMain } from './cli.js';
import { freePort, request } from './http.js';
import { waitFor } from './wait.js';
import { makeTempDir, repoRoot } from './watchdog.js';

/** The credentials every test hub is started with (FNBUS_USERNAME / FNBUS_PASSWORD). */
export const hubCredentials = { user: 'admin', password: 'fnbus-test-password' } as const;

/** Headers for a test hub's authenticated routes (`/system/*`, call status, cancel). */
export const systemAuth = {
  Authorization: basicAuthorization(hubCredentials.user, hubCredentials.password),
} as const;

/** Env for a `fnbus` client command (or queue worker) run against a test hub. */
export const hubCliEnv = {
  FNBUS_USERNAME: hubCredentials.user,
  FNBUS_PASSWORD: hubCredentials.password,
} as const;

/**
 * Env for `fnbus connector <kind>` run alone against a test hub: OpenFaaS's way, `basic_auth` and
 * the credentials as files under `secret_mount_path` (written in a new temporary folder).
 */
export function connectorAuthEnv(): { basic_auth: string; secret_mount_path: string } {
  const dir = makeTempDir('fnbus-connector-secrets-');
  writeFileSync(join(dir, 'basic-auth-user'), hubCredentials.user);
  writeFileSync(join(dir, 'basic-auth-password'), hubCredentials.password);
  return { basic_auth: 'true', secret_mount_path: dir };
}

export interface RunningHub {
  hub: ChildProcess;
  url: string;
  port: number;
  output(): string;
}

/**
 * Runs `fnbus up` as a real process; resolves once it says it is up. `port` reuses a port (a
 * restart on the same address).
 */
export async function startHub(
  args: string[],
  stateDir: string,
  env: NodeJS.ProcessEnv = {},
  port?: number,
  /** How long it may take to say it is up (a stack to build and deploy takes longer). */
  timeoutMs = 20_000,
): Promise<RunningHub> {
  const listen = port ?? (await freePort());
  const hub = spawn(
    process.execPath,
    [cliMain, 'up', '--port', String(listen), '--state-dir', stateDir, ...args],
    {
      cwd: repoRoot,
      env: { ...process.env, ...hubCliEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  hub.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  hub.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => output.includes('"fnbus is up"') || hub.exitCode !== null, {
    timeoutMs,
    what: 'fnbus up',
  });
  if (hub.exitCode !== null) throw new Error(`fnbus up exited ${hub.exitCode}: ${output}`);
  return { hub, url: `http://127.0.0.1:${listen}`, port: listen, output: () => output };
}

/** SIGTERM, and the hub must exit 0. */
export async function stopHub(hub: ChildProcess): Promise<void> {
  if (hub.exitCode !== null || hub.signalCode !== null) return;
  const exited = once(hub, 'exit');
  hub.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
}

/**
 * SIGTERM, bounded (for the scripts that report rather than assert): SIGKILL if the hub has not
 * exited within `timeoutMs`, then SIGKILL whatever function processes it left behind. Resolves
 * with its exit code, or 'timeout'.
 */
export async function terminateHub(
  hub: ChildProcess,
  stateDir: string,
  timeoutMs = 30_000,
): Promise<number | null | 'timeout'> {
  const exited = new Promise<number | null>((resolve) => hub.once('exit', resolve));
  hub.kill('SIGTERM');
  const code = await Promise.race([
    exited,
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref()),
  ]);
  if (code === 'timeout') {
    hub.kill('SIGKILL');
    await exited;
  }
  for (const pid of processesUsing(stateDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  return code;
}

/** Processes whose environment mentions the state folder: the hub's function processes. */
export function processesUsing(stateDir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(stateDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Until the function has a ready replica. */
export const ready = (url: string, name: string) =>
  waitFor(
    async () => {
      const res = await request(`${url}/system/function/${name}`, { headers: systemAuth });
      return (
        res.status === 200 &&
        (JSON.parse(res.text) as { availableReplicas: number }).availableReplicas > 0
      );
    },
    { timeoutMs: 20_000, what: `${name} to be ready` },
  );

/**
 * Writes `<dir>/stack.yml` with a `tally` function, which appends each call's X-Call-Id to
 * `tallyFile` and then works `seconds` (so that a kill lands mid-call), then the `more` YAML lines
 * under `functions:`: other functions, or more of tally's keys (indented as its own). Returns the
 * file.
 */
export function writeTallyStack(
  dir: string,
  tallyFile: string,
  seconds: number,
  more: string[] = [],
): string {
  const file = join(dir, 'stack.yml');
  writeFileSync(
    file,
    [
      'provider:',
      '  name: openfaas',
      'functions:',
      '  tally:',
      '    image: fnbus/tally',
      // $$: a literal $, past the stack file's ${VAR} substitution.
      `    fprocess: sh -c 'echo "$$Http_X_Call_Id" >> ${tallyFile}; sleep ${seconds}; echo done'`,
      ...more,
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * Deploys `name` running `fprocess` (one process per call unless `envVars` sets another mode)
 * with `annotations`; a 202 or throws.
 */
export async function deployProcess(
  url: string,
  name: string,
  fprocess: string,
  annotations: Record<string, string>,
  envVars?: Record<string, string>,
): Promise<void> {
  const res = await request(`${url}/system/functions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...systemAuth },
    body: JSON.stringify({
      service: name,
      image: `fnbus/${name}`,
      envProcess: fprocess,
      annotations,
      ...(envVars ? { envVars } : {}),
    }),
  });
  assert.equal(res.status, 202, res.text);
}
