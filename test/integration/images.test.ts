import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Docker from 'dockerode';
import { runCli } from '../helpers/cli.js';
import {
  dockerUnavailable,
  importBaseImage,
  startDocker,
  startRegistry,
  type RunningDocker,
  type RunningRegistry,
} from '../helpers/docker.js';
import { freePort, request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const skip = dockerUnavailable();

let engine: RunningDocker;
let registry: RunningRegistry;
let nodeBase: string;
let pythonBase: string;
before(async () => {
  if (skip) return;
  [engine, registry] = await Promise.all([startDocker(), startRegistry()]);
  nodeBase = await importBaseImage(engine.docker, 'node');
  pythonBase = await importBaseImage(engine.docker, 'python3');
});
after(async () => {
  await engine?.stop();
  await registry?.stop();
});

/** A stack folder with a node and a python3 function, their images named in the registry. */
function writeStack(extra = ''): { dir: string; file: string } {
  const dir = makeTempDir('fnbus-images-');
  mkdirSync(join(dir, 'hello-node'));
  writeFileSync(
    join(dir, 'hello-node', 'handler.js'),
    'module.exports = async (event) => `node ${process.getuid()} ${event.body}`;\n',
  );
  writeFileSync(
    join(dir, 'hello-node', 'package.json'),
    '{"name":"hello-node","version":"1.0.0","dependencies":{}}\n',
  );
  mkdirSync(join(dir, 'hello-py'));
  writeFileSync(
    join(dir, 'hello-py', 'handler.py'),
    'import os\n\ndef handle(event, context):\n    return "python %d %s" % (os.getuid(), event.body)\n',
  );
  const file = join(dir, 'stack.yml');
  writeFileSync(
    file,
    `version: 1.0
provider:
  name: openfaas
functions:
  hello-node:
    lang: node
    handler: ./hello-node
    image: ${registry.address}/hello-node:0.1
    build_args:
      BASE_IMAGE: ${nodeBase}
  hello-py:
    lang: python3
    handler: ./hello-py
    image: ${registry.address}/hello-py:0.1
    build_args:
      BASE_IMAGE: ${pythonBase}
${extra}`,
  );
  return { dir, file };
}

const cliEnv = () => ({
  DOCKER_HOST: engine.host,
  FNBUS_IMAGES: makeTempDir('fnbus-image-store-'),
});

/**
 * Runs an image on the host's network (the test engine has no bridge), its watchdog and runner on
 * free ports; resolves with its address and the container.
 */
async function runImage(
  docker: Docker,
  image: string,
): Promise<{ url: string; container: Docker.Container }> {
  const [port, runnerPort] = [await freePort(), await freePort()];
  const container = await docker.createContainer({
    Image: image,
    Env: [`port=${port}`, `PORT=${runnerPort}`, `upstream_url=http://127.0.0.1:${runnerPort}`],
    HostConfig: { NetworkMode: 'host', AutoRemove: false },
  });
  await container.start();
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => (await request(`${url}/_/health`).catch(() => undefined))?.status === 200,
    {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: `${image} to be healthy`,
    },
  );
  return { url, container };
}

describe('function images', { skip }, () => {
  it('builds every template function as an image through the Docker API, runs it behind tini as a user that is not root, pushes it', async () => {
    const { dir, file } = writeStack();
    const built = await runCli(['build', '-f', file, '--parallel', '2'], cliEnv());
    assert.equal(built.code, 0, built.stderr);
    assert.match(
      built.stdout,
      new RegExp(`built hello-node as ${registry.address}/hello-node:0.1`),
    );
    assert.match(built.stdout, new RegExp(`built hello-py as ${registry.address}/hello-py:0.1`));
    // Progress: the build's own steps, by function.
    assert.match(built.stderr, /\[hello-node\] Step \d+\/\d+ : FROM/);
    // The build context where faas-cli writes it.
    assert.ok(existsSync(join(dir, 'build', 'hello-node', 'function', 'handler.js')));
    assert.ok(existsSync(join(dir, 'build', 'hello-node', 'Dockerfile')));

    for (const [name, answer] of [
      ['hello-node', /^node 10001 hi$/],
      ['hello-py', /^python 10001 hi$/],
    ] as const) {
      const { url, container } = await runImage(engine.docker, `${registry.address}/${name}:0.1`);
      try {
        const res = await request(`${url}/`, { method: 'POST', body: 'hi' });
        assert.equal(res.status, 200, res.text);
        assert.match(res.text, answer);
        const config = await container.inspect();
        assert.equal(config.Config.User, '10001:10001');
        assert.equal(config.Path, '/opt/fnbus/bin/tini');
      } finally {
        // tini hands SIGTERM to the watchdog, which stops at once: no 10 s grace waited out.
        const startedAt = Date.now();
        await container.stop({ t: 10 });
        assert.ok(Date.now() - startedAt < 5000, `stopped in ${Date.now() - startedAt} ms`);
        await container.remove();
      }
    }

    const pushed = await runCli(['push', '-f', file], cliEnv());
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /pushed hello-node/);
    assert.deepEqual((await registry.catalog()).sort(), ['hello-node', 'hello-py']);
  });

  it('--shrinkwrap writes the build contexts only; --filter picks functions', async () => {
    const { dir, file } = writeStack();
    const run = await runCli(
      ['build', '-f', file, '--shrinkwrap', '--filter', 'hello-py'],
      cliEnv(),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.ok(existsSync(join(dir, 'build', 'hello-py', 'function', 'handler.py')));
    assert.ok(existsSync(join(dir, 'build', 'hello-py', 'index.py')));
    assert.ok(!existsSync(join(dir, 'build', 'hello-node')));
    const dockerfile = readFileSync(join(dir, 'build', 'hello-py', 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /ENTRYPOINT \["\/opt\/fnbus\/bin\/tini"/);
  });

  it('a build that fails says which function and why, with the output of the failed step, and exits non-zero', async () => {
    const { file } = writeStack(`  broken:
    lang: node
    handler: ./hello-node
    image: ${'${REGISTRY}'}/broken:0.1
    build_args:
      BASE_IMAGE: fnbus-test/no-such-base:1
`);
    const run = await runCli(['build', '-f', file, '--filter', 'broken'], {
      ...cliEnv(),
      REGISTRY: registry.address,
    });
    assert.notEqual(run.code, 0);
    assert.match(
      run.stderr,
      /broken: building 127\.0\.0\.1:\d+\/broken:0\.1 failed: .+ \(BASE_IMAGE=fnbus-test\/no-such-base:1\)/,
    );
  });

  it('a Docker engine that does not answer is a clear error', async () => {
    const { file } = writeStack();
    const run = await runCli(['build', '-f', file], {
      ...cliEnv(),
      DOCKER_HOST: 'unix:///nonexistent/docker.sock',
    });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /no Docker engine answers at unix:\/\/\/nonexistent\/docker\.sock/);
  });
});
