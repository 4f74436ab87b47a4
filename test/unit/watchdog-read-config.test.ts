import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import { readConfig } from '../../watchdog/config.js';
import { splitCommand } from '../../watchdog/split-command.js';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    readConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('splitCommand', () => {
  it('splits on spaces and keeps quoted words whole', () => {
    assert.deepEqual(splitCommand('cat'), ['cat']);
    assert.deepEqual(splitCommand(`node "my file.js" --x=1`), ['node', 'my file.js', '--x=1']);
    assert.deepEqual(splitCommand(`sh -c 'echo "$0" | wc -c' arg`), [
      'sh',
      '-c',
      'echo "$0" | wc -c',
      'arg',
    ]);
    assert.deepEqual(splitCommand('a\\ b c'), ['a b', 'c']);
  });

  it('keeps $VAR and globs literal: no shell expands them', () => {
    assert.deepEqual(splitCommand('echo $HOME *.js'), ['echo', '$HOME', '*.js']);
  });

  it('refuses shell operators, naming them', () => {
    assert.throws(() => splitCommand('a | b'), /operator "\|"/);
    assert.throws(() => splitCommand('a > out'), /operator ">"/);
    assert.throws(() => splitCommand('a && b'), /operator "&&"/);
  });

  it('refuses an empty command', () => {
    assert.throws(() => splitCommand('   '), /empty/);
  });
});

describe('readConfig', () => {
  it('applies the classic watchdog defaults when mode is unset', () => {
    const config = readConfig({ fprocess: 'sha512sum' });
    assert.equal(config.mode, 'fork');
    assert.deepEqual(config.command, ['sha512sum']);
    assert.equal(config.port, 8080);
    assert.equal(config.metricsPort, 8081);
    assert.equal(config.readTimeoutMs, 30_000);
    assert.equal(config.writeTimeoutMs, 30_000);
    assert.equal(config.execTimeoutMs, 0);
    assert.equal(config.combineOutput, true);
    assert.equal(config.contentType, undefined);
    assert.equal(config.cgiHeaders, true);
    assert.ok(Object.isFrozen(config));
  });

  it("applies of-watchdog's defaults in its modes", () => {
    const config = readConfig({ mode: 'streaming', fprocess: 'cat' });
    assert.equal(config.execTimeoutMs, 30_000);
    assert.equal(config.combineOutput, false);
    assert.equal(config.contentType, 'application/octet-stream');
  });

  it('reads durations, booleans and numbers in OpenFaaS forms', () => {
    const config = readConfig({
      fprocess: 'cat',
      read_timeout: '1m30s',
      write_timeout: '10',
      exec_timeout: '500ms',
      suppress_lock: '1',
      prefix_logs: 'false',
      max_inflight: '7',
      log_buffer_size: '-1',
    });
    assert.equal(config.readTimeoutMs, 90_000);
    assert.equal(config.writeTimeoutMs, 10_000);
    assert.equal(config.execTimeoutMs, 500);
    assert.equal(config.suppressLock, true);
    assert.equal(config.prefixLogs, false);
    assert.equal(config.maxInflight, 7);
    assert.equal(config.logBufferSize, -1);
  });

  it('prefers function_process and http_upstream_url, as of-watchdog does', () => {
    const config = readConfig({
      mode: 'http',
      fprocess: 'old',
      function_process: 'node server.js',
      upstream_url: 'http://127.0.0.1:1',
      http_upstream_url: 'http://127.0.0.1:3000',
    });
    assert.deepEqual(config.command, ['node', 'server.js']);
    assert.equal(config.upstreamUrl?.port, '3000');
  });

  it('needs no fprocess in static mode', () => {
    assert.equal(readConfig({ mode: 'static', static_path: '/srv' }).staticPath, '/srv');
  });

  it('reports every problem at once, each naming its variable', () => {
    const problems = problemsOf({
      mode: 'http',
      exec_timeout: 'abc',
      max_inflight: '-2',
      write_timeout: '0',
      cgi_headers: 'maybe',
      ready_path: 'ready',
    });
    for (const name of [
      'fprocess',
      'upstream_url',
      'exec_timeout',
      'max_inflight',
      'write_timeout',
      'cgi_headers',
      'ready_path',
    ]) {
      assert.ok(
        problems.some((p) => p.startsWith(`${name}:`)),
        `expected a problem naming ${name} in ${JSON.stringify(problems)}`,
      );
    }
  });

  it('explains unsupported modes', () => {
    assert.match(
      problemsOf({ mode: 'afterburn', fprocess: 'cat' })[0] ?? '',
      /afterburn is deprecated/,
    );
    assert.match(
      problemsOf({ mode: 'bogus', fprocess: 'cat' })[0] ?? '',
      /mode: "bogus" is not one of/,
    );
  });

  it('refuses an upstream that is not an http URL and a command with shell operators', () => {
    assert.match(
      problemsOf({ mode: 'http', fprocess: 'x', upstream_url: 'ftp://a' }).join(),
      /upstream_url/,
    );
    assert.match(problemsOf({ fprocess: 'cat | wc' }).join(), /^fprocess: .*operator/);
  });
});
