import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ConfigError,
  ConflictError,
  FnbusError,
  InsufficientStorageError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
  ValidationError,
  statusOf,
} from '../../core/errors.js';

describe('errors', () => {
  const cases: [FnbusError, string, number, string][] = [
    [new ValidationError('bad'), 'invalid_request', 400, 'ValidationError'],
    [new NotFoundError('gone'), 'not_found', 404, 'NotFoundError'],
    [new ConflictError('exists'), 'conflict', 409, 'ConflictError'],
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
