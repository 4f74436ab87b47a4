import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from '../helpers/wait.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
};
const run = promisify(execFile);

describe('fnbus CLI', () => {
  it('prints its version', async () => {
    assert.equal((await run(cli, ['--version'])).stdout.trim(), version);
    // With no gateway to ask, `version` prints the CLI's version alone (and a note on stderr).
    const noGateway = { env: { ...process.env, FNBUS_GATEWAY: 'http://127.0.0.1:9' } };
    assert.equal((await run(cli, ['version'], noGateway)).stdout.trim(), version);
  });

  it('prints help', async () => {
    const { stdout } = await run(cli, ['--help']);
    assert.match(stdout, /Usage: fnbus/);
  });

  it('exits non-zero on an unknown command, saying so', async () => {
    await assert.rejects(run(cli, ['bogus']), (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /unknown command 'bogus'/);
      return true;
    });
  });
});

describe('bin/fnbus-watchdog', () => {
  const bin = join(root, 'bin', 'fnbus-watchdog');

  it('prints the version', async () => {
    assert.equal((await run(bin, ['--version'])).stdout.trim(), version);
  });

  /** Starts the bin in a process group of its own, as a terminal would; resolves once ready. */
  async function startBin() {
    const tmp = mkdtempSync(join(tmpdir(), 'fnbus-bin-'));
    const child = spawn(bin, [], {
      env: { PATH: process.env.PATH, TMPDIR: tmp, fprocess: 'cat', port: '0', metrics_port: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    const ready = await new Promise<{ port: number }>((resolve, reject) => {
      let seen = '';
      child.stderr.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        const line = seen.split('\n').find((l) => l.includes('"watchdog ready"'));
        if (line) resolve(JSON.parse(line) as { port: number });
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${seen}`)));
    });
    return { child, port: ready.port };
  }

  it('stops on Ctrl-C (SIGINT to its process group): exit 0, no helper left behind', async () => {
    const { child, port } = await startBin();
    const pid = child.pid as number;
    const helpers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ');
    assert.equal(helpers.length, 1, 'fnbus-spawner runs beside the watchdog');
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x' });
    assert.equal(await res.text(), 'x');
    const exited = once(child, 'exit');
    process.kill(-pid, 'SIGINT');
    assert.deepEqual(await exited, [0, null]);
    await waitFor(() => !existsSync(`/proc/${helpers[0]}`), { what: 'fnbus-spawner to exit' });
  });

  it('becomes the node process itself, with the small young generation', async () => {
    const { child, port } = await startBin();
    try {
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(cmdline.includes('--max-semi-space-size=2'), cmdline.join(' '));
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        method: 'POST',
        body: 'via bin',
      });
      assert.equal(await res.text(), 'via bin');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
