import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { freePort, request } from '../helpers/http.js';
import { startCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const start = startCli;

describe('fnbus logs, secret and version against a running hub', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let stateDir: string;
  let url: string;
  let env: NodeJS.ProcessEnv;
  const run = (args: string[], input?: string | Buffer) => start(args, env, input).done;

  async function invoke(name: string, body: string): Promise<void> {
    const res = await request(`${url}/function/${name}`, { method: 'POST', body });
    assert.equal(res.status, 200, res.text);
  }

  before(async () => {
    stateDir = makeTempDir('fnbus-cli-logs-');
    provider = new ProcessProvider({ stateDir });
    await provider.start();
    gateway = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    const address = gateway.server.address();
    assert.ok(address && typeof address === 'object');
    url = `http://127.0.0.1:${address.port}`;
    env = { FNBUS_GATEWAY: url };

    const deployed = await run([
      'deploy',
      '--image',
      'example/noisy:1',
      '--name',
      'noisy',
      '--fprocess',
      "sh -c 'cat; echo called >&2'",
      '--env',
      'combine_output=false',
    ]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await waitFor(
      async () => {
        const res = await request(`${url}/system/function/noisy`);
        if (res.status !== 200) return false;
        return (JSON.parse(res.text) as { availableReplicas?: number }).availableReplicas === 1;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: 'noisy to be ready' },
    );
  });

  after(async () => {
    await gateway?.close();
    await provider?.close();
  });

  it('logs prints TIMESTAMP NAME (INSTANCE) TEXT; --tail and --output json', async () => {
    await invoke('noisy', 'one');
    await invoke('noisy', 'two');
    const text = await waitFor(
      async () => {
        const result = await run(['logs', 'noisy']);
        assert.equal(result.code, 0, result.stderr);
        const lines = result.stdout.split('\n').filter((l) => / called$/.test(l));
        return lines.length >= 2 ? result.stdout : false;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'two "called" lines in fnbus logs' },
    );
    // The watchdog prefixes a function's stderr lines (`2024/01/02 15:04:05 stderr: called`).
    assert.match(text, /^\d{4}-\d{2}-\d{2}T\S+ noisy \(noisy-\S+\) .*\bcalled$/m);

    // The last line is the watchdog's own, after the answer: `Wrote 3 Bytes - Duration: ...`.
    const tailed = await run(['logs', 'noisy', '--tail', '1']);
    assert.equal(tailed.code, 0, tailed.stderr);
    assert.equal(tailed.stdout.trimEnd().split('\n').length, 1, tailed.stdout);
    assert.match(tailed.stdout, /\bWrote 3 Bytes - Duration: \d+\.\d{6}s\n$/);

    const json = await run(['logs', 'noisy', '--output', 'json', '--since', '10m']);
    assert.equal(json.code, 0, json.stderr);
    const messages = json.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    const called = messages.filter((m) => m.text?.endsWith('called'));
    assert.ok(called.length >= 2, json.stdout);
    assert.equal(called[0]?.name, 'noisy');
    assert.equal(called[0]?.namespace, 'openfaas-fn');
    assert.ok(called[0]?.instance);

    // --instance passes through: its lines only, and none for an unknown replica.
    const instance = called[0]?.instance ?? '';
    const mine = await run(['logs', 'noisy', '--instance', instance, '--output', 'json']);
    assert.equal(mine.code, 0, mine.stderr);
    assert.match(mine.stdout, /called"/);
    const nobody = await run(['logs', 'noisy', '--instance', 'no-such-replica']);
    assert.equal(nobody.code, 0, nobody.stderr);
    assert.equal(nobody.stdout, '');

    // An RFC 3339 --since in the future selects nothing.
    const future = await run(['logs', 'noisy', '--since', '2999-01-01T00:00:00Z']);
    assert.equal(future.code, 0, future.stderr);
    assert.equal(future.stdout, '');
  });

  it('logs --follow prints new lines until SIGINT, then exits 0', async () => {
    const follower = start(['logs', 'noisy', '--follow', '--tail', '0'], env);
    try {
      // The follower is attached once a call made now shows up; keep calling until one does.
      await waitFor(
        async () => {
          await invoke('noisy', 'again');
          return follower.stdout().includes(' called\n');
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'a followed "called" line' },
      );
      const before = follower.stdout().split('\n').length;
      await invoke('noisy', 'once more');
      await waitFor(() => follower.stdout().split('\n').length > before, {
        timeoutMs: 10_000,
        what: 'one more followed line',
      });
      assert.match(follower.stdout(), /^\S+ noisy \(noisy-\S+\) .*\bcalled$/m);
    } finally {
      follower.child.kill('SIGINT');
    }
    const result = await follower.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
  });

  it('logs refuses bad --since, --tail and --output in one line; an unknown function is the 404', async () => {
    const since = await run(['logs', 'noisy', '--since', 'yesterday']);
    assert.equal(since.code, 1);
    assert.equal(
      since.stderr,
      'fnbus: --since takes a duration (e.g. 10m) or an RFC 3339 time (e.g. 2024-01-02T15:04:05Z), not "yesterday"\n',
    );
    const tail = await run(['logs', 'noisy', '--tail', '-3']);
    assert.equal(tail.code, 1);
    assert.match(tail.stderr, /^fnbus: --tail must be a whole number/);
    const output = await run(['logs', 'noisy', '--output', 'yaml']);
    assert.equal(output.code, 1);
    assert.equal(output.stderr, 'fnbus: --output takes text or json, not "yaml"\n');
    const unknown = await run(['logs', 'nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^fnbus: the gateway answered 404: .*nope.*\n$/);
  });

  it('secret create (literal, file, binary file, stdin), list, update, remove', async () => {
    const literal = await run(['secret', 'create', 'api-key', '--from-literal', 's3cret']);
    assert.equal(literal.code, 0, literal.stderr);
    assert.equal(literal.stdout, 'created secret api-key\n');

    const dir = makeTempDir('fnbus-cli-secrets-');
    const textFile = join(dir, 'token.txt');
    writeFileSync(textFile, 'from a file\n');
    const fromFile = await run(['secret', 'create', 'token', '--from-file', textFile]);
    assert.equal(fromFile.code, 0, fromFile.stderr);

    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10]);
    const binFile = join(dir, 'blob.bin');
    writeFileSync(binFile, binary);
    const fromBinary = await run(['secret', 'create', 'blob', '--from-file', binFile]);
    assert.equal(fromBinary.code, 0, fromBinary.stderr);

    const fromStdin = await run(['secret', 'create', 'piped'], 'from stdin\n');
    assert.equal(fromStdin.code, 0, fromStdin.stderr);

    const secretFile = (name: string) => readFileSync(join(stateDir, 'secrets', name));
    assert.equal(secretFile('api-key').toString(), 's3cret');
    assert.equal(secretFile('token').toString(), 'from a file\n');
    assert.deepEqual(secretFile('blob'), binary);
    assert.equal(secretFile('piped').toString(), 'from stdin');

    const listed = await run(['secret', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, 'api-key\nblob\npiped\ntoken\n');

    const updated = await run(['secret', 'update', 'api-key'], 'rotated');
    assert.equal(updated.code, 0, updated.stderr);
    assert.equal(updated.stdout, 'updated secret api-key\n');
    assert.equal(secretFile('api-key').toString(), 'rotated');

    const removed = await run(['secret', 'remove', 'piped']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'removed secret piped\n');
    assert.equal((await run(['secret', 'ls'])).stdout, 'api-key\nblob\ntoken\n');
  });

  it('secret errors are one line and exit 1: exists (409), unknown (404), no value', async () => {
    const duplicate = await run(['secret', 'create', 'api-key', '--from-literal', 'x']);
    assert.equal(duplicate.code, 1);
    assert.equal(duplicate.stderr, 'fnbus: secret api-key exists (409): use fnbus secret update\n');

    const unknownRemove = await run(['secret', 'remove', 'nope']);
    assert.equal(unknownRemove.code, 1);
    assert.equal(unknownRemove.stderr, 'fnbus: secret nope is unknown (404)\n');

    const unknownUpdate = await run(['secret', 'update', 'nope', '--from-literal', 'x']);
    assert.equal(unknownUpdate.code, 1);
    assert.equal(unknownUpdate.stderr, 'fnbus: secret nope is unknown (404)\n');

    const empty = await run(['secret', 'create', 'empty']);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^fnbus: the value of secret empty is empty: .*\n$/);

    const both = await run(['secret', 'create', 'x', '--from-literal', 'a', '--from-file', 'b']);
    assert.equal(both.code, 1);
    assert.equal(both.stderr, 'fnbus: give either --from-literal or --from-file, not both\n');
  });

  it('version prints the CLI version, then the gateway’s and provider’s', async () => {
    const result = await run(['version']);
    assert.equal(result.code, 0, result.stderr);
    const [first, ...rest] = result.stdout.trimEnd().split('\n');
    assert.match(first ?? '', /^\d+\.\d+\.\d+/);
    assert.match(rest.join('\n'), new RegExp(`^gateway: ${url} version \\S+ sha unknown$`, 'm'));
    // The provider's commit: the one this build was made from.
    assert.match(rest.join('\n'), /^provider: \S+ version \S+ sha [0-9a-f]{7} \(process\)$/m);
  });

  it('version without a gateway: the CLI version and a one-line note, exit 0', async () => {
    const port = await freePort();
    const result = await start(['version', '--gateway', `http://127.0.0.1:${port}`], {}).done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\S*\n$/);
    assert.match(result.stderr, /^fnbus: note: the CLI version only; cannot reach the gateway/);
    assert.equal(result.stderr.split('\n').length, 2, 'one line');
  });
});
