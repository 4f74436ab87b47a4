import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { EnvReader } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';

/** Runs `read` against a fresh reader and returns the problems `done()` reports. */
function problemsOf(env: Record<string, string>, read: (r: EnvReader) => unknown): string[] {
  const reader = new EnvReader(env);
  const value = read(reader);
  try {
    reader.done({ value });
    return [];
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return [...error.problems];
  }
}

describe('EnvReader.boolean', () => {
  for (const [text, value] of [
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['false', false],
    ['False', false],
    ['0', false],
  ] as const) {
    it(`reads "${text}" as ${value}`, () => {
      const reader = new EnvReader({ flag: text });
      assert.equal(reader.boolean('flag', !value), value);
      reader.done({});
    });
  }

  it('uses the fallback when unset or empty', () => {
    const reader = new EnvReader({ empty: '' });
    assert.equal(reader.boolean('missing', true), true);
    assert.equal(reader.boolean('empty', false), false);
    reader.done({});
  });

  it('reports a value that is not a boolean, naming the variable', () => {
    const problems = problemsOf({ write_debug: 'yes' }, (r) => r.boolean('write_debug', false));
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /^write_debug: "yes" is not a boolean/);
  });
});

describe('EnvReader.integer', () => {
  it('reads whole numbers', () => {
    const reader = new EnvReader({ port: '8080', neg: '-3', padded: ' 42 ' });
    assert.equal(reader.integer('port', 0), 8080);
    assert.equal(reader.integer('neg', 0), -3);
    assert.equal(reader.integer('padded', 0), 42);
    assert.equal(reader.integer('missing', 7), 7);
    reader.done({});
  });

  for (const text of ['1.5', '12abc', 'abc', '0x10', '1e3', '99999999999999999999']) {
    it(`refuses "${text}"`, () => {
      const problems = problemsOf({ max_inflight: text }, (r) => r.integer('max_inflight', 1));
      assert.equal(problems.length, 1);
      assert.match(problems[0] ?? '', /^max_inflight: .* is not a whole number/);
    });
  }

  it('checks the range and says what it is', () => {
    assert.match(
      problemsOf({ port: '70000' }, (r) => r.integer('port', 8080, { min: 1, max: 65535 }))[0] ??
        '',
      /port: "70000" is not a whole number between 1 and 65535/,
    );
    assert.match(
      problemsOf({ n: '0' }, (r) => r.integer('n', 1, { min: 1 }))[0] ?? '',
      /n: "0" is not a whole number >= 1/,
    );
    assert.deepEqual(
      problemsOf({ n: '65535' }, (r) => r.integer('n', 1, { min: 1, max: 65535 })),
      [],
    );
  });
});

describe('EnvReader.oneOf', () => {
  const modes = ['fork', 'http', 'streaming'] as const;

  it('accepts a listed word', () => {
    const reader = new EnvReader({ mode: 'http' });
    assert.equal(reader.oneOf('mode', modes, 'fork'), 'http');
    assert.equal(reader.oneOf('other', modes, 'fork'), 'fork');
    reader.done({});
  });

  it('refuses any other word and lists the choices', () => {
    const problems = problemsOf({ mode: 'HTTP2' }, (r) => r.oneOf('mode', modes, 'fork'));
    assert.deepEqual(problems, ['mode: "HTTP2" is not one of fork, http, streaming']);
  });
});

describe('EnvReader', () => {
  it('takes the first of several names that is set', () => {
    const reader = new EnvReader({ write_timeout: '5s', exec_timeout: '' });
    assert.equal(reader.durationMs(['exec_timeout', 'write_timeout'], 1000), 5000);
    assert.equal(reader.string(['a', 'b'], 'fallback'), 'fallback');
    reader.done({});
  });

  it('reports every problem at once, naming each variable', () => {
    const reader = new EnvReader({
      read_timeout: '10x',
      max_inflight: 'many',
      basic_auth: 'maybe',
      mode: 'nope',
      port: '8080',
    });
    reader.durationMs('read_timeout', 10_000);
    reader.integer('max_inflight', 1, { min: 0 });
    reader.boolean('basic_auth', false);
    reader.oneOf('mode', ['http', 'fork'], 'http');
    reader.integer('port', 8080);
    reader.problem('fprocess: required in fork mode');

    assert.throws(
      () => reader.done({}),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.problems.length, 5);
        for (const name of ['read_timeout', 'max_inflight', 'basic_auth', 'mode', 'fprocess']) {
          assert.ok(
            error.problems.some((p) => p.startsWith(`${name}: `)),
            `no problem names ${name}`,
          );
          assert.ok(error.message.includes(`${name}: `), `the message omits ${name}`);
        }
        assert.equal(error.status, 500);
        assert.equal(error.code, 'invalid_config');
        return true;
      },
    );
  });

  it('returns a frozen config when all is well', () => {
    const reader = new EnvReader({ port: '9000' });
    const config = reader.done({ port: reader.integer('port', 8080) });
    assert.deepEqual(config, { port: 9000 });
    assert.ok(Object.isFrozen(config));
  });
});
