import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { envsubst, EnvsubstError } from '../../cli/envsubst.js';
import { loadStack, parseStack } from '../../cli/stack.js';
import { StackError } from '../../cli/stack-error.js';
import { toDeployment } from '../../cli/to-deployment.js';
import type { Stack } from '../../cli/stack.js';
import { ValidationError } from '../../core/errors.js';

/** test/fixtures/stacks in the source tree (fixtures are not compiled into dist/). */
const stacks = join(
  fileURLToPath(new URL('../../../', import.meta.url)),
  'test',
  'fixtures',
  'stacks',
);

const lines = (...text: string[]): string => `${text.join('\n')}\n`;

/** Lines 1-5 of most test stacks: one function `hello`, whose settings start at line 5. */
const head = ['provider:', '  name: openfaas', 'functions:', '  hello:', '    image: hello:1'];

function parse(
  text: string,
  env: Record<string, string | undefined> = {},
  files: Record<string, string> = {},
): Stack {
  return parseStack(text, {
    env,
    file: 'stack.yml',
    stackDir: '/stack',
    readFile: (path) => {
      const content = files[path];
      if (content === undefined) {
        throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
      }
      return content;
    },
  });
}

/** Asserts that parsing fails with one line naming stack.yml, `field` and `line`. */
function rejects(
  text: string,
  expected: { field: string | undefined; line: number; message?: RegExp; file?: string },
  files: Record<string, string> = {},
): void {
  assert.throws(
    () => parse(text, {}, files),
    (error: unknown) => {
      assert.ok(error instanceof StackError, String(error));
      assert.ok(error instanceof ValidationError);
      assert.equal(error.status, 400);
      assert.equal(error.field, expected.field);
      assert.equal(error.line, expected.line);
      const file = expected.file ?? 'stack.yml';
      assert.equal(error.file, file);
      assert.ok(!error.message.includes('\n'), `one line: ${error.message}`);
      assert.ok(error.message.startsWith(`${file}:${expected.line}:`), error.message);
      if (expected.field) assert.ok(error.message.includes(expected.field), error.message);
      if (expected.message) assert.match(error.message, expected.message);
      return true;
    },
  );
}

describe('parseStack: a full stack', () => {
  const env = { REGISTRY: 'registry.local' };
  const stack = loadStack(join(stacks, 'full.yml'), env);

  it('reads the provider, configuration and every function', () => {
    assert.equal(stack.version, '1.0');
    assert.deepEqual(stack.provider, {
      name: 'openfaas',
      gateway: 'http://127.0.0.1:8080',
      network: undefined,
    });
    assert.deepEqual(stack.configuration, {
      templates: [
        { name: 'node22', source: 'https://github.com/openfaas/templates', path: undefined },
      ],
      copy: ['common'],
    });
    assert.deepEqual(Object.keys(stack.functions), ['hello', 'figlet']);
    const hello = stack.functions.hello;
    assert.ok(hello);
    assert.equal(hello.line, 18);
    assert.equal(hello.handlerPath, join(stacks, 'hello'));
    assert.deepEqual(hello.environment, {
      LOG_LEVEL: 'info',
      PORT: '8080',
      RATIO: '1.0',
      DEBUG: 'true',
      EMPTY: '',
      write_timeout: '10s',
      PRICE: '$5',
    });
    assert.deepEqual(hello.environmentFile, ['env/common.yml', 'env/override.yml']);
    assert.deepEqual(hello.environmentFromFiles, {
      LOG_LEVEL: 'debug',
      SHARED: 'from-override',
      PORT: '3000',
    });
    const figlet = stack.functions.figlet;
    assert.ok(figlet);
    assert.equal(figlet.lang, 'dockerfile');
    assert.equal(figlet.skipBuild, true);
    assert.deepEqual(figlet.buildArgs, { NODE_VERSION: '20' });
    assert.deepEqual(figlet.buildOptions, ['dev']);
    assert.equal(figlet.limits, undefined);
  });

  it('maps each function to the FunctionDeployment faas-cli deploys', () => {
    const deployments = Object.entries(stack.functions).map(([name, fn]) =>
      toDeployment(name, fn, stack),
    );
    assert.deepEqual(deployments, [
      {
        service: 'hello',
        image: 'registry.local/hello:latest',
        namespace: 'openfaas-fn',
        envProcess: 'node index.js',
        // faas-cli: mergeMap(environment, fileEnvironment), so the files' values win.
        envVars: {
          LOG_LEVEL: 'debug',
          PORT: '3000',
          RATIO: '1.0',
          DEBUG: 'true',
          EMPTY: '',
          write_timeout: '10s',
          PRICE: '$5',
          SHARED: 'from-override',
        },
        constraints: ['node.platform.os == linux'],
        secrets: ['api-key'],
        labels: { 'com.openfaas.scale.min': '2' },
        annotations: { topic: 'orders', schedule: '*/5 * * * *' },
        limits: { memory: '128Mi', cpu: '100m' },
        requests: { memory: '64Mi' },
        readOnlyRootFilesystem: true,
      },
      {
        service: 'figlet',
        image: 'ghcr.io/openfaas/figlet:latest',
        readOnlyRootFilesystem: false,
      },
    ]);
  });

  it('accepts provider fnbus, no version and x- keys', () => {
    const stack = parse(
      lines(
        'x-anchors: 1',
        'provider:',
        '  name: fnbus',
        'functions:',
        '  a:',
        '    image: a',
        '    x-note: hi',
      ),
    );
    assert.equal(stack.provider.name, 'fnbus');
    assert.equal(stack.version, undefined);
    assert.deepEqual(Object.keys(stack.functions), ['a']);
  });

  it('keeps an empty functions map', () => {
    assert.deepEqual(parse(lines('provider: {name: openfaas}', 'functions: {}')).functions, {});
  });

  it('requires an image to deploy', () => {
    const stack = parse(
      lines('provider: {name: openfaas}', 'functions:', '  a:', '    lang: node22'),
    );
    const fn = stack.functions.a;
    assert.ok(fn);
    assert.throws(() => toDeployment('a', fn, stack), {
      name: 'StackError',
      message: 'stack.yml:3: functions.a.image: missing: a function needs an image to be deployed',
    });
  });
});

describe('environment_file', () => {
  const text = lines(
    ...head,
    '    environment: {A: inline, B: inline}',
    '    environment_file: [a.yml, sub/b.yml]',
  );

  it('reads files relative to the stack folder, later files and files over inline', () => {
    const stack = parse(
      text,
      {},
      {
        '/stack/a.yml': lines('environment:', '  B: a', '  C: a'),
        '/stack/sub/b.yml': lines('environment:', '  C: b', '  D: 4'),
      },
    );
    const fn = stack.functions.hello;
    assert.ok(fn);
    assert.deepEqual(toDeployment('hello', fn, stack).envVars, {
      A: 'inline',
      B: 'a',
      C: 'b',
      D: '4',
    });
  });

  it('does not substitute ${VAR} inside environment files, as faas-cli does not', () => {
    const stack = parse(
      text,
      { X: 'x' },
      {
        '/stack/a.yml': lines('environment:', '  B: ${X}'),
        '/stack/sub/b.yml': '',
      },
    );
    assert.deepEqual(stack.functions.hello?.environmentFromFiles, { B: '${X}' });
  });

  it('names a missing file', () => {
    rejects(
      text,
      {
        field: 'functions.hello.environment_file[1]',
        line: 7,
        message: /environment file "sub\/b\.yml" not found \(looked for \/stack\/sub\/b\.yml\)/,
      },
      { '/stack/a.yml': '' },
    );
  });

  it('reports an error inside a file with that file and its line', () => {
    rejects(
      text,
      {
        file: 'sub/b.yml',
        field: 'environment.D',
        line: 2,
        message: /must be a single value, not a list/,
      },
      { '/stack/a.yml': '', '/stack/sub/b.yml': lines('environment:', '  D: [1]') },
    );
    rejects(
      text,
      { file: 'a.yml', field: 'enviroment', line: 1, message: /did you mean "environment"/ },
      {
        '/stack/a.yml': lines('enviroment: {}'),
      },
    );
  });
});

describe('envsubst', () => {
  const env = { A: 'a', EMPTY: '', NAME: 'n' };

  it('expands $VAR and ${VAR}, a missing one to ""', () => {
    assert.equal(envsubst('$A ${A} x${A}y $MISSING|${MISSING}|', env), 'a a xay ||');
    assert.equal(envsubst('$NAME_2 ${NAME}_2', env), ' n_2');
  });

  it('applies defaults', () => {
    assert.equal(envsubst('${MISSING:-d} ${EMPTY:-d} ${A:-d}', env), 'd d a');
    assert.equal(envsubst('${MISSING-d} ${EMPTY-d} ${A-d}', env), 'd  a');
    assert.equal(envsubst('${MISSING:=d} ${EMPTY=d}', env), 'd ');
    assert.equal(envsubst('${MISSING:-${A}-${OTHER:-z}}', env), 'a-z');
    assert.equal(envsubst('${MISSING:-http://h:8080/x}', env), 'http://h:8080/x');
  });

  it('keeps $$ as $ and a $ that starts no name', () => {
    assert.equal(envsubst('$$A $$${A} 5$ $1 $-', env), '$A $a 5$ $1 $-');
  });

  it('refuses operators it does not support and unterminated braces', () => {
    assert.throws(
      () => envsubst('x ${A^^}', env),
      (e: unknown) => {
        assert.ok(e instanceof EnvsubstError);
        assert.equal(e.offset, 2);
        assert.match(e.message, /unsupported substitution "\$\{A\^\^\}"/);
        return true;
      },
    );
    assert.throws(() => envsubst('${}', env), EnvsubstError);
    assert.throws(() => envsubst('${A\n}', env), /unterminated/);
  });

  it('runs on the stack text before parsing, unless turned off', () => {
    const text = lines(...head, '    environment:', '      URL: ${HOST:-localhost}:$PORT');
    assert.deepEqual(parse(text, { PORT: '80' }).functions.hello?.environment, {
      URL: 'localhost:80',
    });
    const raw = parseStack(text, {
      env: { PORT: '80' },
      stackDir: '/s',
      readFile: () => '',
      envsubst: false,
    });
    assert.deepEqual(raw.functions.hello?.environment, { URL: '${HOST:-localhost}:$PORT' });
  });

  it('reports a bad substitution at its line and column', () => {
    rejects(lines(...head, '    fprocess: ${X/a/b}'), {
      field: undefined,
      line: 6,
      message: /^stack\.yml:6:15: unsupported/,
    });
  });
});

describe('parseStack: errors name the file, the field and the line', () => {
  it('rejects a document that is not a map', () => {
    rejects(lines('- a', '- b'), {
      field: undefined,
      line: 1,
      message: /must be a map with "provider" and "functions"/,
    });
    rejects('', { field: undefined, line: 1, message: /must be a map/ });
  });

  it('reports YAML syntax errors with line and column', () => {
    rejects(lines(...head, '    environment: [a', '  other: 1'), {
      field: undefined,
      line: 7,
      message: /^stack\.yml:7:3: Flow sequence/,
    });
    rejects(lines(...head, '    image: again'), {
      field: undefined,
      line: 6,
      message: /^stack\.yml:6:5: Map keys must be unique/,
    });
  });

  it('requires functions and a provider', () => {
    rejects(lines('provider:', '  name: openfaas'), {
      field: 'functions',
      line: 1,
      message: /missing/,
    });
    rejects(lines('provider:', '  name: openfaas', 'functions:'), {
      field: 'functions',
      line: 3,
      message: /missing/,
    });
    rejects(lines('functions: {}'), { field: 'provider', line: 1, message: /missing/ });
  });

  it('rejects a provider other than openfaas or fnbus', () => {
    rejects(lines('provider:', '  name: faas', 'functions: {}'), {
      field: 'provider.name',
      line: 2,
      message: /must be "openfaas" or "fnbus", not "faas"/,
    });
    rejects(lines('provider:', '  gateway: http://x', 'functions: {}'), {
      field: 'provider.name',
      line: 2,
    });
  });

  it('accepts only version 1.0', () => {
    rejects(lines('version: 2.0', 'provider: {name: openfaas}', 'functions: {}'), {
      field: 'version',
      line: 1,
      message: /only "1.0" is valid, not "2.0"/,
    });
  });

  it('rejects a function name that is not a DNS-1123 label', () => {
    rejects(
      lines(
        'provider: {name: openfaas}',
        'functions:',
        '  a: {image: a}',
        '  Hello_World:',
        '    image: x',
      ),
      {
        field: 'functions.Hello_World',
        line: 4,
        message: /invalid function name "Hello_World"/,
      },
    );
  });

  it('rejects unknown fields, suggesting the known one', () => {
    rejects(lines(...head, '    enviroment:', '      A: b'), {
      field: 'functions.hello.enviroment',
      line: 6,
      message: /unknown field \(did you mean "environment"\?\)/,
    });
    rejects(lines('provider: {name: openfaas, gatway: x}', 'functions: {}'), {
      field: 'provider.gatway',
      line: 1,
      message: /did you mean "gateway"/,
    });
    rejects(lines('provider: {name: openfaas}', 'functions: {}', 'extra: 1'), {
      field: 'extra',
      line: 3,
    });
    rejects(lines(...head, '    limits: {memory: 1Gi, gpu: 1}'), {
      field: 'functions.hello.limits.gpu',
      line: 6,
    });
  });

  it('rejects values of the wrong type', () => {
    rejects(lines(...head, '    environment: [a, b]'), {
      field: 'functions.hello.environment',
      line: 6,
      message: /must be a map, not a list/,
    });
    rejects(lines(...head, '    labels: 5'), {
      field: 'functions.hello.labels',
      line: 6,
      message: /must be a map, not "5"/,
    });
    rejects(lines(...head, '    environment:', '      A: ok', '      PORT: {n: 1}'), {
      field: 'functions.hello.environment.PORT',
      line: 8,
      message: /must be a single value, not a map/,
    });
    rejects(lines(...head, '    labels:', '      com.openfaas.scale.min: [1]'), {
      field: 'functions.hello.labels["com.openfaas.scale.min"]',
      line: 7,
    });
    rejects(lines(...head, '    secrets: api-key'), {
      field: 'functions.hello.secrets',
      line: 6,
      message: /must be a list/,
    });
    rejects(lines(...head, '    secrets: [a, [b]]'), {
      field: 'functions.hello.secrets[1]',
      line: 6,
    });
    rejects(lines(...head, '    fprocess: [a]'), { field: 'functions.hello.fprocess', line: 6 });
    rejects(lines(...head, '    skip_build: maybe'), {
      field: 'functions.hello.skip_build',
      line: 6,
      message: /must be true or false, not "maybe"/,
    });
    rejects(lines('provider: {name: openfaas}', 'functions:', '  hello: 1'), {
      field: 'functions.hello',
      line: 3,
    });
    rejects(lines(...head, '    namespace: Prod_1'), {
      field: 'functions.hello.namespace',
      line: 6,
      message: /invalid namespace/,
    });
    rejects(
      lines(
        'provider: {name: openfaas}',
        'functions: {}',
        'configuration:',
        '  templates:',
        '    - source: x',
      ),
      {
        field: 'configuration.templates[0].name',
        line: 5,
      },
    );
  });

  it('refuses a handler or copy path outside the stack folder', () => {
    rejects(lines(...head, '    handler: ../../etc'), {
      field: 'functions.hello.handler',
      line: 6,
      message: /"..\/..\/etc" is outside the stack file's folder/,
    });
    rejects(lines(...head, '    handler: /etc'), { field: 'functions.hello.handler', line: 6 });
    rejects(lines(...head, '    handler: ./a/../../b'), {
      field: 'functions.hello.handler',
      line: 6,
    });
    rejects(
      lines('provider: {name: openfaas}', 'functions: {}', 'configuration:', '  copy: [ok, ../up]'),
      {
        field: 'configuration.copy[1]',
        line: 4,
      },
    );
    assert.equal(
      parse(lines(...head, '    handler: ./a/../b')).functions.hello?.handlerPath,
      '/stack/b',
    );
  });

  it('reads booleans as Go yaml does and aliases through merge keys', () => {
    const stack = parse(
      lines(
        'x-defaults: &defaults',
        '  image: shared:1',
        '  readonly_root_filesystem: yes',
        'provider: {name: openfaas}',
        'functions:',
        '  a:',
        '    <<: *defaults',
        '    skip_build: off',
        '  b:',
        '    <<: *defaults',
        '    image: own:2',
      ),
    );
    assert.equal(stack.functions.a?.image, 'shared:1');
    assert.equal(stack.functions.a?.readOnlyRootFilesystem, true);
    assert.equal(stack.functions.a?.skipBuild, false);
    assert.equal(stack.functions.b?.image, 'own:2');
  });

  it('stops an alias bomb built from merge keys', () => {
    // Each level merges the one below ten times: 10^6 maps if every alias were walked.
    const bomb = ['x-l0: &l0 {k: v}'];
    for (let i = 1; i <= 6; i++)
      bomb.push(
        `x-l${i}: &l${i} {<<: [${Array(10)
          .fill(`*l${i - 1}`)
          .join(', ')}]}`,
      );
    const text = lines(
      ...bomb,
      'provider: {name: openfaas}',
      'functions:',
      '  hello:',
      '    environment: *l6',
    );
    rejects(text, { field: undefined, line: 2, message: /too many aliases/ });
  });

  it('names the file it cannot read', () => {
    assert.throws(
      () => loadStack(join(stacks, 'missing.yml'), {}),
      (e: unknown) => {
        assert.ok(e instanceof StackError);
        assert.match(e.message, /missing\.yml: cannot read the stack file: ENOENT/);
        return true;
      },
    );
  });
});
