import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalImageStore } from '../../deploy/process/local-image-store.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { freePort, request } from '../helpers/http.js';
import { runCli } from '../helpers/cli.js';
import { commitAll, git } from '../helpers/git.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';

const fnbus = runCli;

describe('fnbus client commands against a running hub', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;
  let env: NodeJS.ProcessEnv;
  const run = (args: string[], input?: string) => fnbus(args, env, input);

  /** Waits until the function has `replicas` ready replicas, as the gateway reports them. */
  async function ready(name: string, replicas = 1): Promise<void> {
    await waitFor(
      async () => {
        const res = await request(`${url}/system/function/${name}`);
        if (res.status !== 200) return false;
        const status = JSON.parse(res.text) as { availableReplicas?: number };
        return status.availableReplicas === replicas;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: `${name} to have ${replicas} ready replicas` },
    );
  }

  before(async () => {
    // This machine's image store, one of the test's own: `fnbus deploy -f` builds into it.
    const images = makeTempDir('fnbus-cli-images-');
    provider = new ProcessProvider({
      stateDir: makeTempDir('fnbus-cli-client-'),
      images: new LocalImageStore(images),
    });
    await provider.start();
    gateway = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    const address = gateway.server.address();
    assert.ok(address && typeof address === 'object');
    url = `http://127.0.0.1:${address.port}`;
    env = { FNBUS_GATEWAY: url, FNBUS_IMAGES: images };
  });

  after(async () => {
    await gateway?.close();
    await provider?.close();
  });

  it('deploy -f deploys every stack function (PUT, then POST on 404), with progress', async () => {
    const { dir, stackFile } = greetStack('fnbus-cli-stack-', 'example/greet:latest', [
      '    labels:',
      '      team: blue',
    ]);
    const first = await run(['deploy', '-f', stackFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'deployed echo (1/2)\ndeployed greet (2/2)\n');
    await ready('echo');
    await ready('greet');

    // The node template function runs its handler in place, built under its image name.
    const greeted = await run(['invoke', 'greet'], 'fnbus');
    assert.equal(greeted.code, 0, greeted.stderr);
    assert.deepEqual(JSON.parse(greeted.stdout), { status: 'Received input: "fnbus"' });

    // A second deploy updates (PUT) what exists; --filter picks functions.
    const again = await run(['deploy', '-f', stackFile, '--filter', 'gr*']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'deployed greet (1/1)\n');
    // What went over the wire is what the stack says, runnable elsewhere: no path of this machine.
    const status = await provider.get('greet', 'openfaas-fn');
    assert.equal(status?.image, 'example/greet:latest');
    assert.deepEqual(status?.annotations ?? {}, {});
    assert.equal(status?.labels?.faas_function, 'greet');
    assert.doesNotMatch(JSON.stringify(status), new RegExp(dir));

    const none = await run(['deploy', '-f', stackFile, '--filter', 'nothing']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^fnbus: no function in .* matches "nothing"\n$/);
  });

  it('build records a stack’s template functions in this machine’s image store, by image name', async () => {
    const { dir, stackFile } = greetStack('fnbus-cli-build-', 'example/built:1');
    const images = makeTempDir('fnbus-cli-build-images-');
    const built = await fnbus(['build', '-f', stackFile], { FNBUS_IMAGES: images });
    assert.equal(built.code, 0, built.stderr);
    assert.equal(
      built.stdout,
      'echo: nothing to build (not a template function)\nbuilt greet as example/built:1\n',
    );
    const record = new LocalImageStore(images).find('example/built:1');
    assert.equal(record?.lang, 'node');
    assert.equal(record?.handler, join(dir, 'greet'));
  });

  it('build and deploy --tag sha: the image tagged from git, built and deployed by that name', async () => {
    const { dir, stackFile } = greetStack('fnbus-cli-tag-', 'example/tagged:1');
    const notGit = await run(['deploy', '-f', stackFile, '--tag', 'sha', '--filter', 'greet']);
    assert.equal(notGit.code, 1);
    assert.equal(
      notGit.stderr,
      'fnbus: --tag sha needs the stack in a git repository with a commit\n',
    );
    git(dir, 'init', '-q');
    const sha = commitAll(dir, 'greet');

    const badMode = await run(['deploy', '-f', stackFile, '--tag', 'nightly']);
    assert.equal(badMode.code, 1);
    assert.equal(
      badMode.stderr,
      'fnbus: --tag takes latest, sha, branch, describe, not "nightly"\n',
    );
    assert.equal(badMode.stdout, '');

    const built = await run([
      'build',
      '-f',
      stackFile,
      '--tag',
      'sha',
      '--no-image',
      '--filter',
      'greet',
    ]);
    assert.equal(built.code, 0, built.stderr);
    assert.equal(built.stdout, `built greet as example/tagged:1-${sha}\n`);
    // Only greet: echo stays as the first test deployed it, for the tests after this one.
    const deployed = await run(['deploy', '-f', stackFile, '--tag', 'sha', '--filter', 'greet']);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.equal((await provider.get('greet', 'openfaas-fn'))?.image, `example/tagged:1-${sha}`);
    await ready('greet');
    const greeted = await run(['invoke', 'greet'], 'tagged');
    assert.equal(greeted.code, 0, greeted.stderr);
    assert.deepEqual(JSON.parse(greeted.stdout), { status: 'Received input: "tagged"' });
  });

  it('deploy -f installs a template handler’s dependencies first, once, and refuses a broken one', async () => {
    const dir = makeTempDir('fnbus-cli-deps-');
    // A local package: npm installs it without a registry.
    mkdirSync(join(dir, 'shout'));
    writeFileSync(
      join(dir, 'shout', 'package.json'),
      JSON.stringify({ name: 'shout', version: '1.0.0', main: 'index.js' }),
    );
    writeFileSync(
      join(dir, 'shout', 'index.js'),
      'module.exports = (text) => String(text).toUpperCase();\n',
    );
    mkdirSync(join(dir, 'loud'));
    writeFileSync(
      join(dir, 'loud', 'package.json'),
      JSON.stringify({ name: 'loud', private: true, dependencies: { shout: 'file:../shout' } }),
    );
    writeFileSync(
      join(dir, 'loud', 'handler.js'),
      "const shout = require('shout');\nmodule.exports = async (event) => shout(event.body);\n",
    );
    const stackFile = join(dir, 'stack.yml');
    const stack = (handler: string) =>
      writeFileSync(
        stackFile,
        [
          'provider:',
          '  name: openfaas',
          'functions:',
          '  loud:',
          '    lang: node',
          `    handler: ./${handler}`,
          '    image: example/loud:latest',
          '',
        ].join('\n'),
      );
    stack('loud');
    const first = await run(['deploy', '-f', stackFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /loud: installing dependencies \(npm install\)/);
    assert.match(first.stderr, /loud: dependencies installed in [\d.]+s/);
    await ready('loud');
    const res = await request(`${url}/function/loud`, { method: 'POST', body: 'hello' });
    assert.equal(res.text, 'HELLO');

    const again = await run(['deploy', '-f', stackFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /installing/, 'installed once, not on every deploy');

    mkdirSync(join(dir, 'broken'));
    writeFileSync(join(dir, 'broken', 'handler.js'), 'module.exports = async () => 1;\n');
    writeFileSync(join(dir, 'broken', 'package.json'), '{"dependencies": {"shout": ');
    stack('broken');
    const failed = await run(['deploy', '-f', stackFile]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /loud: installing dependencies in .*broken failed \(exit \d+\)/);
    assert.equal(failed.stdout, '', 'nothing deployed');
    assert.equal((await run(['remove', 'loud'])).code, 0);
  });

  it('deploy --image --fprocess deploys one function with env, labels and annotations', async () => {
    const result = await run([
      'deploy',
      '--image',
      'example/env:1',
      '--name',
      'env-fn',
      '--fprocess',
      'env',
      '--env',
      'GREETING=hello',
      '--label',
      'tier=test',
      '--annotation',
      'topic=news',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'deployed env-fn\n');
    await ready('env-fn');
    const status = await provider.get('env-fn', 'openfaas-fn');
    assert.equal(status?.envProcess, 'env');
    assert.deepEqual(status?.envVars, { GREETING: 'hello' });
    assert.equal(status?.labels?.tier, 'test');
    assert.equal(status?.annotations?.topic, 'news');

    const bad = await run(['deploy', '--image', 'x', '--name', 'y', '--env', 'NOEQUALS']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'fnbus: --env takes KEY=VALUE, not "NOEQUALS"\n');
  });

  it('list prints names; -v a table; --json the gateway’s JSON', async () => {
    const names = await run(['list']);
    assert.equal(names.code, 0, names.stderr);
    assert.equal(names.stdout, 'echo\nenv-fn\ngreet\n');

    const verbose = await run(['list', '-v']);
    assert.equal(verbose.code, 0, verbose.stderr);
    const lines = verbose.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^FUNCTION\s+IMAGE\s+INVOCATIONS\s+REPLICAS\s+AVAILABLE$/);
    assert.match(lines[1] ?? '', /^echo\s+example\/echo:latest\s+\d+\s+1\s+1$/);
    assert.equal(lines.length, 4);

    const json = await run(['list', '--json']);
    const parsed = JSON.parse(json.stdout) as { name: string; image: string }[];
    assert.deepEqual(
      parsed.map((fn) => fn.name),
      ['echo', 'env-fn', 'greet'],
    );
    // Every function carries faas_function: <name>, as on OpenFaaS.
    const labels = JSON.parse(json.stdout) as { name: string; labels?: Record<string, string> }[];
    for (const fn of labels) assert.equal(fn.labels?.faas_function, fn.name);
  });

  it('describe shows status, replicas, image, process, labels, and the process-provider note', async () => {
    const echo = await run(['describe', 'echo']);
    assert.equal(echo.code, 0, echo.stderr);
    assert.match(echo.stdout, /^Name:\s+echo$/m);
    assert.match(echo.stdout, /^Status:\s+Ready$/m);
    assert.match(echo.stdout, /^Replicas:\s+1$/m);
    assert.match(echo.stdout, /^Available Replicas:\s+1$/m);
    assert.match(echo.stdout, /^Invocations:\s+\d+$/m);
    assert.match(echo.stdout, /^Image:\s+example\/echo:latest$/m);
    assert.match(echo.stdout, /^Function Process:\s+cat$/m);
    // faas_function is on every function, as OpenFaaS's providers label them.
    assert.match(echo.stdout, /^Labels:\s+faas_function=echo, team=blue$/m);
    assert.match(echo.stdout, /image is kept but not run: the function runs its Function Process/);

    const greet = await run(['describe', 'greet']);
    assert.match(greet.stdout, /^Annotations:\s+-$/m);
    assert.match(greet.stdout, /runs what fnbus build made of the image/);
  });

  it('invoke sends stdin, headers, query and method; the answer goes to stdout', async () => {
    const body = 'a body\nof two lines\n';
    const echoed = await run(['invoke', 'echo'], body);
    assert.equal(echoed.code, 0, echoed.stderr);
    assert.equal(echoed.stdout, body);

    const env = await run(
      [
        'invoke',
        'env-fn',
        '--method',
        'PUT',
        '--header',
        'X-Test-One: first',
        '-H',
        'X-Test-Two: second',
        '--query',
        'a=1',
        '--query',
        'b=two words',
        '--content-type',
        'application/json',
      ],
      '{}',
    );
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /^Http_Method=PUT$/m);
    assert.match(env.stdout, /^Http_X_Test_One=first$/m);
    assert.match(env.stdout, /^Http_X_Test_Two=second$/m);
    assert.match(env.stdout, /^Http_Content_Type=application\/json$/m);
    assert.match(env.stdout, /^Http_Query=a=1&b=two(\+|%20)words$/m);
    assert.match(env.stdout, /^GREETING=hello$/m);

    // A larger binary-safe body arrives intact.
    const deploy = await run([
      'deploy',
      '--image',
      'example/sha:1',
      '--name',
      'sha',
      '--fprocess',
      'sha512sum',
    ]);
    assert.equal(deploy.code, 0, deploy.stderr);
    await ready('sha');
    const big = 'x'.repeat(300_000);
    const summed = await run(['invoke', 'sha'], big);
    assert.equal(summed.code, 0, summed.stderr);
    assert.equal(summed.stdout.split(' ')[0], createHash('sha512').update(big).digest('hex'));
  });

  it('scale sets replicas; a bad --replicas is one line and exit 1', async () => {
    const scaled = await run(['scale', 'echo', '--replicas', '2']);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stdout, 'scaled echo to 2 replicas\n');
    await ready('echo', 2);

    for (const value of ['two', '-1', '1.5']) {
      const bad = await run(['scale', 'echo', '--replicas', value]);
      assert.equal(bad.code, 1, value);
      assert.equal(
        bad.stderr,
        `fnbus: --replicas must be a whole number, 0 or more, not "${value}"\n`,
      );
    }
  });

  it('remove removes a function; removing it again is the gateway’s 404', async () => {
    const removed = await run(['remove', 'sha']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'removed sha\n');
    assert.equal((await request(`${url}/system/function/sha`)).status, 404);

    const again = await run(['remove', 'sha']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^fnbus: the gateway answered 404: .*sha.*\n$/);
  });

  it('an unknown function: describe says the gateway’s 404; invoke exits 1', async () => {
    const described = await run(['describe', 'nope']);
    assert.equal(described.code, 1);
    assert.equal(described.stdout, '');
    assert.match(described.stderr, /^fnbus: the gateway answered 404: function not found: nope/);
    assert.equal(described.stderr.split('\n').length, 2, 'one line');

    const invoked = await run(['invoke', 'nope'], 'x');
    assert.equal(invoked.code, 1);
    assert.equal(invoked.stdout, '');
    assert.match(invoked.stderr, /fnbus: nope answered 404\n$/);
  });

  it('an unreachable gateway is one line naming the address', async () => {
    const port = await freePort();
    const gatewayUrl = `http://127.0.0.1:${port}`;
    for (const args of [['list'], ['describe', 'echo'], ['invoke', 'echo']]) {
      const result = await fnbus([...args, '--gateway', gatewayUrl], {});
      assert.equal(result.code, 1, args.join(' '));
      assert.match(
        result.stderr,
        new RegExp(`^fnbus: cannot reach the gateway at ${gatewayUrl}: .*ECONNREFUSED.*\\n$`),
      );
    }
    // OPENFAAS_URL is read when FNBUS_GATEWAY is not set.
    const viaEnv = await fnbus(['list'], { OPENFAAS_URL: gatewayUrl });
    assert.match(viaEnv.stderr, new RegExp(`cannot reach the gateway at ${gatewayUrl}`));
  });

  it('authenticates with --username/--password or FNBUS_USERNAME/FNBUS_PASSWORD; a 401 says how', async () => {
    const lockedGateway = buildGateway({
      provider,
      config: readConfig({
        basic_auth: 'true',
        secret_mount_path: makeTempDir('fnbus-no-secrets-'),
      }),
      credentials: { user: 'admin', password: 'secret' },
    });
    await lockedGateway.listen({ port: 0, host: '127.0.0.1' });
    try {
      const address = lockedGateway.server.address();
      assert.ok(address && typeof address === 'object');
      const locked = `http://127.0.0.1:${address.port}`;
      const withFlags = await fnbus(
        ['list', '--gateway', locked, '--username', 'admin', '--password', 'secret'],
        {},
      );
      assert.equal(withFlags.code, 0, withFlags.stderr);
      const fromEnv = await fnbus(['list'], {
        FNBUS_GATEWAY: locked,
        FNBUS_USERNAME: 'admin',
        FNBUS_PASSWORD: 'secret',
      });
      assert.equal(fromEnv.code, 0, fromEnv.stderr);
      for (const refused of [
        await fnbus(['list', '--gateway', locked], {}),
        await fnbus(
          ['list', '--gateway', locked, '--username', 'admin', '--password', 'wrong'],
          {},
        ),
      ]) {
        assert.equal(refused.code, 1);
        assert.equal(
          refused.stderr,
          'fnbus: the gateway refused the credentials (401): log in with fnbus login, or use --username/--password or FNBUS_USERNAME/FNBUS_PASSWORD\n',
        );
      }
    } finally {
      await lockedGateway.close();
    }
  });
});

/**
 * A stack in a new folder: `echo` (fprocess cat, plus `echoLines`) and `greet`, the node
 * template's sample handler as image `greetImage`.
 */
function greetStack(prefix: string, greetImage: string, echoLines: string[] = []) {
  const dir = makeTempDir(prefix);
  cpSync(join(repoRoot, 'templates', 'node', 'function'), join(dir, 'greet'), { recursive: true });
  const stackFile = join(dir, 'stack.yml');
  writeFileSync(
    stackFile,
    [
      'version: 1.0',
      'provider:',
      '  name: openfaas',
      'functions:',
      '  echo:',
      '    image: example/echo:latest',
      '    fprocess: cat',
      ...echoLines,
      '  greet:',
      '    lang: node',
      '    handler: ./greet',
      `    image: ${greetImage}`,
      '',
    ].join('\n'),
  );
  return { dir, stackFile };
}
