import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadStack } from '../../cli/stack.js';
import { freePort, request } from '../helpers/http.js';
import { fprocess, makeTempDir, startWatchdog } from '../helpers/watchdog.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');
const run = promisify(execFile);

function fnbus(cwd: string, ...args: string[]) {
  return run(cli, args, { cwd });
}

async function fails(cwd: string, args: string[], message: RegExp): Promise<void> {
  await assert.rejects(fnbus(cwd, ...args), (error: { code: number; stderr: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr, message);
    assert.equal(error.stderr.trim().split('\n').length, 1, 'one line');
    return true;
  });
}

describe('fnbus new', () => {
  it('creates the handler folder and the stack file, then adds to it keeping its comments', async () => {
    const dir = makeTempDir('fnbus-new-');
    const first = await fnbus(dir, 'new', 'hello', '--lang', 'node');
    assert.match(first.stdout, /created \.\/hello and wrote stack\.yml/);
    assert.ok(existsSync(join(dir, 'hello', 'handler.js')));

    const stackFile = join(dir, 'stack.yml');
    writeFileSync(stackFile, `# my functions\n${readFileSync(stackFile, 'utf8')}`);
    await fnbus(dir, 'new', 'py-fn', '--lang', 'python3');
    assert.ok(existsSync(join(dir, 'py-fn', 'handler.py')));
    assert.match(readFileSync(stackFile, 'utf8'), /^# my functions\n/);

    const stack = loadStack(stackFile, {});
    assert.deepEqual(Object.keys(stack.functions), ['hello', 'py-fn']);
    // faas-cli refuses a stack file whose provider is not "openfaas", and its deploy reads the
    // template's fprocess from ./template/<lang>/template.yml.
    assert.equal(stack.provider.name, 'openfaas');
    for (const lang of ['node', 'python3']) {
      const copy = readFileSync(join(dir, 'template', lang, 'template.yml'), 'utf8');
      assert.equal(copy, readFileSync(join(root, 'templates', lang, 'template.yml'), 'utf8'));
    }
    assert.equal(stack.functions.hello?.lang, 'node');
    assert.equal(stack.functions['py-fn']?.image, 'py-fn:latest');
    assert.equal(stack.functions['py-fn']?.handler, './py-fn');
  });

  it('refuses bad input with one line, writing nothing', async () => {
    const dir = makeTempDir('fnbus-new-');
    await fails(dir, ['new', 'Bad_Name', '--lang', 'node'], /invalid function name "Bad_Name"/);
    await fails(
      dir,
      ['new', 'fn', '--lang', 'cobol'],
      /no template for "cobol"; choose one of: alexa, node, python3/,
    );
    assert.equal(existsSync(join(dir, 'fn')), false);
    assert.equal(existsSync(join(dir, 'stack.yml')), false);

    await fnbus(dir, 'new', 'fn', '--lang', 'node');
    await fails(dir, ['new', 'fn', '--lang', 'node'], /the folder fn already exists/);
    const before = readFileSync(join(dir, 'stack.yml'), 'utf8');
    writeFileSync(
      join(dir, 'stack.yml'),
      `${before}  other:\n    lang: node\n    handler: ./other\n    image: other:latest\n`,
    );
    await fails(dir, ['new', 'other', '--lang', 'node'], /already has a function named other/);
    assert.equal(existsSync(join(dir, 'other')), false);
  });

  it('makes a function that answers behind the watchdog', async (t) => {
    const dir = makeTempDir('fnbus-new-');
    await fnbus(dir, 'new', 'greet', '--lang', 'node');
    const port = await freePort();
    const watchdog = await startWatchdog({
      mode: 'http',
      fprocess: fprocess('node', join(root, 'templates', 'node', 'index.js')),
      handler_path: join(dir, 'greet'),
      upstream_url: `http://127.0.0.1:${port}`,
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'fnbus' }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { status: 'Received input: {"name":"fnbus"}' });
  });
});

describe('fnbus template pull', () => {
  it("writes fnbus's templates to ./template/ for faas-cli, and keeps what is there unless --overwrite", async () => {
    const dir = makeTempDir('fnbus-template-pull-');
    const first = await fnbus(dir, 'template', 'pull');
    assert.match(first.stdout, /template\/node: written/);
    for (const lang of ['node', 'python3', 'alexa']) {
      assert.ok(existsSync(join(dir, 'template', lang, 'Dockerfile')), lang);
      assert.ok(existsSync(join(dir, 'template', lang, 'template.yml')), lang);
    }
    assert.match(
      readFileSync(join(dir, 'template', 'dockerfile', 'template.yml'), 'utf8'),
      /^language: dockerfile$/m,
    );
    writeFileSync(join(dir, 'template', 'node', 'Dockerfile'), '# mine\n');
    const again = await fnbus(dir, 'template', 'pull');
    assert.match(again.stdout, /template\/node: kept/);
    assert.equal(readFileSync(join(dir, 'template', 'node', 'Dockerfile'), 'utf8'), '# mine\n');
    await fnbus(dir, 'template', 'pull', '--overwrite');
    assert.notEqual(readFileSync(join(dir, 'template', 'node', 'Dockerfile'), 'utf8'), '# mine\n');
  });
});
