import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, it, after } from 'node:test';
import { pathToFileURL } from 'node:url';
import { cliMain, runCli } from '../helpers/cli.js';
import { startRedis } from '../helpers/servers.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';

/**
 * What every command does before it runs: load only what it uses (the module graph, not a timer:
 * the machine is shared), refuse bad usage and bad configuration in a few lines, and fail on a
 * busy port with one line and exit 1.
 */

/** The modules (file and package URLs) `fnbus ARGS` loads, through a loader hook that notes them. */
async function loadedModules(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const dir = makeTempDir('fnbus-module-trace-');
  const log = join(dir, 'loaded.txt');
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';\n` +
      `export async function load(url, context, next) {\n` +
      `  appendFileSync(${JSON.stringify(log)}, url + '\\n');\n` +
      `  return next(url, context);\n}\n`,
  );
  writeFileSync(log, '');
  const register = join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', register, cliMain, ...args], {
    env: { PATH: process.env.PATH, OPENFAAS_CONFIG: dir, ...env },
    stdio: 'ignore',
  });
  await new Promise((resolve) => child.once('close', resolve));
  const { readFileSync } = await import('node:fs');
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

/** What a client command must never load: the hub's servers, queues, logging and metrics. */
const heavy = [
  /node_modules\/(fastify|@fastify|pino|prom-client|bullmq|ioredis|@nats-io|undici|better-sqlite3|cron-parser)\//,
  // YAML only when there is a stack or a saved login to read (there is none here).
  /node_modules\/yaml\//,
  /\/dist\/(gateway|queue|deploy|connectors)\//,
  /\/dist\/cli\/(up|connectors|queue-worker|worker-supervisor)\.js$/,
];

function heavyOnes(urls: string[]): string[] {
  return urls
    .filter((url) => heavy.some((pattern) => pattern.test(url)))
    .map((url) => url.replace(pathToFileURL(repoRoot).href, ''));
}

describe('fnbus loads only what a command uses', () => {
  for (const args of [['version'], ['--help'], ['list', '--help'], ['list'], ['secret', 'list']]) {
    it(`fnbus ${args.join(' ')}: no server, queue, logger or metrics module`, async () => {
      const urls = await loadedModules(args, { FNBUS_GATEWAY: 'http://127.0.0.1:9' });
      assert.ok(
        urls.some((url) => url.endsWith('/dist/cli/main.js')),
        'the trace saw main.js',
      );
      assert.deepEqual(heavyOnes(urls), []);
    });
  }

  it('fnbus up --help: not the hub either, until it runs', async () => {
    assert.deepEqual(heavyOnes(await loadedModules(['up', '--help'])), []);
  });
});

describe('a usage error is one line and the usage line', () => {
  it('an unknown option', async () => {
    const { code, stdout, stderr } = await runCli(['list', '--bogus'], {});
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.equal(stderr, "fnbus: unknown option '--bogus'\nusage: fnbus list [options]\n");
  });

  it('no command at all', async () => {
    const { code, stderr } = await runCli([], {});
    assert.equal(code, 1);
    assert.equal(
      stderr,
      'fnbus: name a command (fnbus --help lists them)\nusage: fnbus [options] [command]\n',
    );
  });

  it('a missing argument, in a subcommand', async () => {
    const { code, stderr } = await runCli(['secret', 'create'], {});
    assert.equal(code, 1);
    assert.equal(
      stderr,
      "fnbus: missing required argument 'name'\nusage: fnbus secret create [options] <name>\n",
    );
  });

  it('a missing required option', async () => {
    const { code, stderr } = await runCli(['scale', 'hello'], {});
    assert.equal(code, 1);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, stderr);
    assert.match(lines[0] ?? '', /^fnbus: required option '--replicas <n>' not specified$/);
    assert.equal(lines[1], 'usage: fnbus scale [options] <name>');
  });
});

describe('every command has help with an example', () => {
  const commands = [
    ['up'],
    ['gateway'],
    ['queue-worker'],
    ['connector'],
    ['new'],
    ['build'],
    ['deploy'],
    ['list'],
    ['describe'],
    ['invoke'],
    ['remove'],
    ['scale'],
    ['logs'],
    ['secret'],
    ['secret', 'create'],
    ['version'],
    ['call'],
    ['cancel'],
    ['dlq'],
    ['dlq', 'list'],
    ['topics'],
    ['login'],
    ['logout'],
    ['namespace'],
    ['namespace', 'create'],
  ];
  it('fnbus --help lists them', async () => {
    const { code, stdout } = await runCli(['--help'], {});
    assert.equal(code, 0);
    for (const [name] of commands) assert.match(stdout, new RegExp(`\\n  ${name}\\b`), name);
    assert.match(stdout, /\nExamples:\n {2}fnbus up -f stack\.yml/);
  });
  for (const command of commands) {
    it(`fnbus ${command.join(' ')} --help`, async () => {
      const { code, stdout } = await runCli([...command, '--help'], {});
      assert.equal(code, 0);
      const examples = stdout.split(/\nExamples?:\n/)[1] ?? '';
      assert.ok(examples.includes(`fnbus ${command.join(' ')}`), stdout);
    });
  }
});

describe('a service that cannot start says why in one line and exits 1', () => {
  let busy: Server | undefined;
  after(() => busy?.close());

  /** A port something else listens on (on 127.0.0.1 and, for a wildcard listener, everywhere). */
  async function busyPort(host?: string): Promise<number> {
    busy?.close();
    const server = createServer();
    busy = server;
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    return address.port;
  }

  it('fnbus up on a busy port', async () => {
    const port = await busyPort('127.0.0.1');
    const stateDir = makeTempDir('fnbus-busy-');
    const { code, stderr } = await runCli(
      ['up', '--port', String(port), '--state-dir', stateDir, '--connectors', 'none'],
      { basic_auth: 'false' },
    );
    assert.equal(stderr, `fnbus: port ${port} on 127.0.0.1 is in use\n`);
    assert.equal(code, 1);
  });

  it('fnbus gateway on a busy port', async () => {
    const port = await busyPort('127.0.0.1');
    const stateDir = makeTempDir('fnbus-busy-');
    const { code, stderr } = await runCli(
      ['gateway', '--port', String(port), '--state-dir', stateDir],
      { basic_auth: 'false' },
    );
    assert.equal(stderr, `fnbus: port ${port} on 127.0.0.1 is in use\n`);
    assert.equal(code, 1);
  });

  it('fnbus connector on a busy metrics port', async () => {
    const port = await busyPort();
    const { code, stderr } = await runCli(
      ['connector', 'cron', '--gateway', 'http://127.0.0.1:9'],
      {
        FNBUS_METRICS_PORT: String(port),
      },
    );
    assert.equal(stderr, `fnbus: port ${port} on every address is in use\n`);
    assert.equal(code, 1);
  });

  it('fnbus queue-worker on a busy metrics port', async () => {
    const redis = await startRedis();
    try {
      const port = await busyPort();
      const { code, stderr } = await runCli(
        ['queue-worker', '--queue', redis.url, '--gateway', 'http://127.0.0.1:9'],
        { FNBUS_METRICS_PORT: String(port) },
      );
      assert.equal(stderr, `fnbus: port ${port} on every address is in use\n`);
      assert.equal(code, 1);
    } finally {
      await redis.stop();
    }
  });

  it('fnbus up and gateway with a state folder that cannot be made: why, at once', async () => {
    const file = join(makeTempDir('fnbus-state-'), 'a-file');
    writeFileSync(file, '');
    // /proc/x once made Node's recursive mkdir loop for ever.
    for (const [command, dir, why] of [
      ['up', '/proc/fnbus-state', 'the folder cannot be made here (ENOENT)'],
      ['gateway', '/proc/fnbus-state/deeper', 'the folder cannot be made here (ENOENT)'],
      ['up', join(file, 'state'), 'the folder cannot be made here (ENOTDIR)'],
      ['up', file, 'a file is in the way, not a folder'],
    ] as const) {
      const { code, stderr } = await runCli(
        [
          command,
          '--port',
          '0',
          '--state-dir',
          dir,
          ...(command === 'up' ? ['--connectors', 'none'] : []),
        ],
        { basic_auth: 'false' },
      );
      assert.equal(
        stderr,
        `fnbus: invalid configuration:\n  - --state-dir ${dir}: ${why}\n`,
        `${command} --state-dir ${dir}`,
      );
      assert.equal(code, 1);
    }
  });

  it('fnbus up with bad settings in several components: every problem, nothing started', async () => {
    const stateDir = join(makeTempDir('fnbus-config-'), 'state');
    mkdirSync(stateDir);
    const { code, stdout, stderr } = await runCli(
      ['up', '--state-dir', stateDir, '--queue', 'kafka://x'],
      {
        port: 'eighty',
        read_timeout: 'soon',
        max_inflight: '0',
        FNBUS_CONNECTORS: 'cron,carrier-pigeon',
        FNBUS_WEBHOOK_PORT: '-1',
        max_functions: '0',
      },
    );
    assert.equal(code, 1);
    assert.equal(stdout, '');
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'fnbus: invalid configuration:');
    for (const name of [
      '--queue',
      'FNBUS_CONNECTORS',
      'port',
      'read_timeout',
      'max_inflight',
      'FNBUS_WEBHOOK_PORT',
      'max_functions',
    ]) {
      assert.ok(
        lines.some((line) => line.startsWith(`  - ${name}: `)),
        `${name} named in:\n${stderr}`,
      );
    }
    assert.ok(!stderr.includes('    at '), 'no stack trace');
    assert.deepEqual(readdirSync(stateDir), [], 'nothing started: no queue, no password');
  });
});
