import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ConfigError,
  ConflictError,
  FnbusError,
  FunctionCallError,
  httpAnswer,
  InstallError,
  InsufficientStorageError,
  listenError,
  ListenError,
  NotFoundError,
  NotImplementedError,
  NotStartedError,
  PayloadTooLargeError,
  QueueFullError,
  StorageError,
  UnavailableError,
  ValidationError,
  statusOf,
} from '../../core/errors.js';

describe('errors', () => {
  const cases: [FnbusError, string, number, string][] = [
    [new ValidationError('bad'), 'invalid_request', 400, 'ValidationError'],
    [new NotFoundError('gone'), 'not_found', 404, 'NotFoundError'],
    [new ConflictError('exists'), 'conflict', 409, 'ConflictError'],
    [new PayloadTooLargeError('too big'), 'payload_too_large', 413, 'PayloadTooLargeError'],
    [new NotImplementedError('no logs'), 'not_implemented', 501, 'NotImplementedError'],
    [new UnavailableError('no replica'), 'unavailable', 503, 'UnavailableError'],
    [
      new InsufficientStorageError('disk full'),
      'insufficient_storage',
      507,
      'InsufficientStorageError',
    ],
    [new ConfigError(['a: bad']), 'invalid_config', 500, 'ConfigError'],
  ];
  for (const [error, code, status, name] of cases) {
    it(`${name} has code ${code} and status ${status}`, () => {
      assert.ok(error instanceof FnbusError);
      assert.ok(error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.status, status);
      assert.equal(error.name, name);
      assert.equal(statusOf(error), status);
    });
  }

  it('maps anything else to 500', () => {
    assert.equal(statusOf(new Error('boom')), 500);
    assert.equal(statusOf('a string'), 500);
    assert.equal(statusOf(undefined), 500);
    assert.equal(statusOf({ status: 404 }), 500);
  });

  it('keeps a custom code and status, and the cause', () => {
    const cause = new Error('socket hang up');
    const error = new FnbusError('upstream_timeout', 504, 'too slow', { cause });
    assert.equal(statusOf(error), 504);
    assert.equal(error.code, 'upstream_timeout');
    assert.equal(error.cause, cause);
  });

  it('ConfigError lists every problem in its message', () => {
    const error = new ConfigError(['port: "x" is not a whole number', 'mode: "y" is not one of a']);
    assert.deepEqual(error.problems, [
      'port: "x" is not a whole number',
      'mode: "y" is not one of a',
    ]);
    assert.match(error.message, /port: "x"/);
    assert.match(error.message, /mode: "y"/);
  });
});

describe('errors: the named classes, HTTP and listen failures', () => {
  it('names each class, with its code and status', () => {
    for (const [error, code, status] of [
      [new NotStartedError('x'), 'not_started', 503],
      [new StorageError('x'), 'storage_failed', 500],
      [new InstallError('x'), 'install_failed', 500],
      [new FunctionCallError(418, 'x'), 'function_error', 418],
      [new ListenError('x'), 'cannot_listen', 500],
    ] as const) {
      assert.equal(error.code, code);
      assert.equal(error.status, status);
      assert.equal(error.name, error.constructor.name);
    }
  });

  it('httpAnswer: a FnbusError its own way, anything else a bare 500', () => {
    assert.deepEqual(httpAnswer(new NotFoundError('no hello')), {
      status: 404,
      text: 'no hello\n',
      headers: {},
    });
    assert.deepEqual(httpAnswer(new QueueFullError('full', 7)).headers, { 'Retry-After': '7' });
    assert.deepEqual(httpAnswer(new Error('/etc/passwd: EACCES')), {
      status: 500,
      text: 'internal error\n',
      headers: {},
    });
    assert.equal(httpAnswer('thrown text').status, 500);
  });

  it('listenError: a port in use, named, in one line', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use'), {
      code: 'EADDRINUSE',
      address: '127.0.0.1',
      port: 8080,
    });
    assert.equal(listenError(inUse)?.message, 'port 8080 on 127.0.0.1 is in use');
    const everywhere = Object.assign(new Error('x'), {
      code: 'EADDRINUSE',
      address: '::',
      port: 1,
    });
    assert.equal(listenError(everywhere)?.message, 'port 1 on every address is in use');
    const denied = Object.assign(new Error('x'), { code: 'EACCES', address: '0.0.0.0', port: 80 });
    assert.match(
      listenError(denied)?.message ?? '',
      /^port 80 on every address is not this user's/,
    );
    assert.equal(listenError(new Error('other')), undefined);
  });
});
