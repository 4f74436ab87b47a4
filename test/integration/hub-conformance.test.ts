import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import {
  hubCliEnv,
  ready,
  startHub,
  stopHub,
  systemAuth,
  type RunningHub,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';

interface Status {
  name: string;
  replicas?: number;
  availableReplicas?: number;
  envVars?: Record<string, string>;
  [field: string]: unknown;
}

/**
 * OpenFaaS conformance of a running `fnbus up`, as faas-cli and OpenFaaS functions meet it:
 * `/system/info`, unknown request fields, template environments, secrets read by template
 * handlers, and the logs of functions that run and that cannot start.
 */
describe('fnbus up as OpenFaaS clients and functions meet it', () => {
  let running: RunningHub;
  let url: string;
  let cliEnv: NodeJS.ProcessEnv;
  const json = { 'Content-Type': 'application/json', ...systemAuth };
  const system = (method: string, path: string, body?: unknown) =>
    request(`${url}${path}`, {
      method,
      headers: json,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const status = async (name: string): Promise<Status> => {
    const res = await system('GET', `/system/function/${name}`);
    assert.equal(res.status, 200, res.text);
    return JSON.parse(res.text) as Status;
  };
  const logs = async (name: string): Promise<string> => {
    const result = await startCli(['logs', name], cliEnv).done;
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };

  before(async () => {
    const dir = makeTempDir('fnbus-conformance-');
    running = await startHub(['--connectors', 'none'], join(dir, 'state'));
    url = running.url;
    cliEnv = { FNBUS_GATEWAY: url, ...hubCliEnv };

    mkdirSync(join(dir, 'py'));
    writeFileSync(
      join(dir, 'py', 'handler.py'),
      [
        'def handle(event, context):',
        '    print("printed " + event.body)',
        '    return context.secret("api-key")',
        '',
      ].join('\n'),
    );
    mkdirSync(join(dir, 'js'));
    writeFileSync(
      join(dir, 'js', 'handler.js'),
      "module.exports = async (event, context) => context.secret('api-key');\n",
    );
    writeFileSync(
      join(dir, 'stack.yml'),
      [
        'provider:',
        '  name: openfaas',
        'functions:',
        '  py:',
        '    lang: python3',
        '    handler: ./py',
        '    image: example/py:latest',
        '    secrets: [api-key]',
        '    environment:',
        '      MAX_JSON_SIZE: 1mb',
        '  js:',
        '    lang: node',
        '    handler: ./js',
        '    image: example/js:latest',
        '    secrets: [api-key]',
        '',
      ].join('\n'),
    );
    const created = await system('POST', '/system/secrets', { name: 'api-key', value: 's3cret' });
    assert.equal(created.status, 201, created.text);
    const deployed = await startCli(['deploy', '-f', join(dir, 'stack.yml')], cliEnv).done;
    assert.equal(deployed.code, 0, deployed.stderr);
    await ready(url, 'py');
    await ready(url, 'js');
  });
  after(() => stopHub(running.hub));

  it('/system/info: the package version and the commit the build was made from', async () => {
    const res = await system('GET', '/system/info');
    assert.equal(res.status, 200, res.text);
    const info = JSON.parse(res.text) as {
      version: { release: string; sha: string };
      provider: { provider: string; version: { release: string; sha: string } };
    };
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    const build = JSON.parse(readFileSync(join(repoRoot, 'dist', 'build-info.json'), 'utf8')) as {
      sha: string;
    };
    assert.equal(info.version.release, pkg.version);
    assert.equal(info.provider.version.release, pkg.version);
    assert.match(info.version.sha, /^[0-9a-f]{40}$/);
    assert.equal(info.version.sha, build.sha);
    assert.equal(info.provider.version.sha, build.sha);
    // A commit of this repository.
    execFileSync('git', ['cat-file', '-e', `${build.sha}^{commit}`], { cwd: repoRoot });
  });

  it('a build outside git writes sha "unknown", and goes on', () => {
    const copy = makeTempDir('fnbus-no-git-');
    mkdirSync(join(copy, 'dist', 'watchdog'), { recursive: true });
    copyFileSync(
      join(repoRoot, 'dist', 'watchdog', 'write-build-info.js'),
      join(copy, 'dist', 'watchdog', 'write-build-info.js'),
    );
    execFileSync(process.execPath, [join(copy, 'dist', 'watchdog', 'write-build-info.js')], {
      env: { ...process.env, GIT_CEILING_DIRECTORIES: copy },
    });
    const written = JSON.parse(readFileSync(join(copy, 'dist', 'build-info.json'), 'utf8')) as {
      sha: string;
    };
    assert.equal(written.sha, 'unknown');
  });

  it('ignores unknown fields of request bodies, as OpenFaaS does; wrong types stay a 400', async () => {
    const name = `later-${Math.random().toString(36).slice(2, 8)}`;
    const deploy = await system('POST', '/system/functions', {
      service: name,
      image: 'example/cat:latest',
      envProcess: 'cat',
      fieldOfALaterOpenfaas: { anything: [1, 2] },
      limits: { memory: '128Mi', 'ephemeral-storage': '1Gi' },
    });
    assert.equal(deploy.status, 202, deploy.text);
    const deployed = await status(name);
    assert.equal(deployed.fieldOfALaterOpenfaas, undefined);
    assert.deepEqual(deployed.limits, { memory: '128Mi' });

    const secret = `gone-${Math.random().toString(36).slice(2, 8)}`;
    assert.equal(
      (await system('POST', '/system/secrets', { name: secret, value: 'v' })).status,
      201,
    );
    // faas-cli's secret remove sends the whole Secret: value included.
    const removed = await system('DELETE', '/system/secrets', { name: secret, value: '' });
    assert.equal(removed.status, 202, removed.text);
    const scaled = await system('POST', `/system/scale-function/${name}`, {
      serviceName: name,
      replicas: 1,
      newOpenfaasField: true,
    });
    assert.equal(scaled.status, 202, scaled.text);
    const deleted = await system('DELETE', '/system/functions', {
      functionName: name,
      extra: 'x',
    });
    assert.equal(deleted.status, 202, deleted.text);

    for (const [body, field] of [
      [{ service: 'typed', image: 'x', envProcess: 'cat', envVars: 'A=1' }, 'envVars'],
      [{ service: 'typed', image: 'x', envProcess: 'cat', labels: { a: 1 } }, 'labels'],
      [{ service: 'typed', image: 'x', envProcess: 7 }, 'envProcess'],
      [{ service: 'typed', image: 'x', limits: { memory: 128 } }, 'memory'],
    ] as const) {
      const res = await system('POST', '/system/functions', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.text, new RegExp(field), res.text);
    }
  });

  it("gives template functions their template's environment, their own overriding it", async () => {
    const { envVars = {} } = await status('py');
    assert.equal(envVars.PYTHONUNBUFFERED, '1');
    assert.equal(envVars.prefix_logs, 'false');
    assert.equal(envVars.mode, 'http');
    assert.equal(envVars.MAX_JSON_SIZE, '1mb');
    assert.equal(envVars.upstream_url, 'http://127.0.0.1:3000');
    assert.equal((await status('js')).envVars?.MAX_JSON_SIZE, '100kb');
  });

  it("python's print() reaches fnbus logs; template handlers read their secrets", async () => {
    const marker = `marker-${Math.random().toString(36).slice(2, 8)}`;
    const py = await request(`${url}/function/py`, { method: 'POST', body: marker });
    assert.equal(py.status, 200, py.text);
    assert.equal(py.text, 's3cret');
    const js = await request(`${url}/function/js`, { method: 'POST', body: 'x' });
    assert.equal(js.status, 200, js.text);
    assert.equal(js.text, 's3cret');
    // The process keeps running: only an unbuffered stdout shows the line now.
    await waitFor(async () => (await logs('py')).includes(`printed ${marker}`), {
      timeoutMs: 10_000,
      what: 'the printed line in fnbus logs',
    });
  });

  it('a command written for OpenFaaS reads its secrets at /var/openfaas/secrets', async () => {
    for (const [service, envProcess] of [
      ['cat-secret', 'cat /var/openfaas/secrets/api-key'],
      ['sh-secret', "sh -c 'cat /var/openfaas/secrets/api-key'"],
    ] as const) {
      const res = await system('POST', '/system/functions', {
        service,
        image: 'functions/alpine:latest',
        envProcess,
        secrets: ['api-key'],
      });
      assert.equal(res.status, 202, res.text);
      await ready(url, service);
      const answer = await request(`${url}/function/${service}`, { method: 'POST' });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.text, 's3cret');
    }
  });

  it('logs each fork-mode call as the classic watchdog does', async () => {
    const deployed = await system('POST', '/system/functions', {
      service: 'forked',
      image: 'example/cat:latest',
      envProcess: 'cat',
    });
    assert.equal(deployed.status, 202, deployed.text);
    await ready(url, 'forked');
    const res = await request(`${url}/function/forked`, { method: 'POST', body: 'hello' });
    assert.equal(res.text, 'hello');
    const text = await waitFor(
      async () => {
        const out = await logs('forked');
        return /Wrote 5 Bytes - Duration: \d+\.\d{6}s$/m.test(out) ? out : false;
      },
      { timeoutMs: 10_000, what: 'the call in fnbus logs' },
    );
    assert.match(text, /^\S+ forked \(forked-\S+\) \d{4}\/\d{2}\/\d{2} \S+ Forking fprocess\.$/m);
  });

  it('a function whose command cannot start is not ready, and its logs say why', async () => {
    const deployed = await system('POST', '/system/functions', {
      service: 'nowhere',
      image: 'example/nowhere:latest',
      envProcess: 'fnbus-no-such-command --flag',
    });
    assert.equal(deployed.status, 202, deployed.text);
    const text = await waitFor(
      async () => {
        const out = await logs('nowhere');
        return out.includes('cannot start the function process') ? out : false;
      },
      { timeoutMs: 10_000, what: 'the reason in fnbus logs' },
    );
    assert.match(text, /not found in PATH/);
    const one = await status('nowhere');
    assert.equal(one.replicas, 1);
    assert.equal(one.availableReplicas, 0);
    const listed = await system('GET', '/system/functions');
    const all = JSON.parse(listed.text) as Status[];
    assert.equal(all.find((fn) => fn.name === 'nowhere')?.availableReplicas, 0);
    assert.doesNotMatch(running.output(), /not found in PATH/);
    // A call is refused with the reason at once: waiting for a replica would not help.
    const call = await request(`${url}/function/nowhere`, { method: 'POST', body: 'x' });
    assert.equal(call.status, 503);
    assert.match(call.text, /cannot start "fnbus-no-such-command": not found in PATH/);
  });
});
