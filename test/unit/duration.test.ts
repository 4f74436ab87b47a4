import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { formatDuration, parseDurationMs } from '../../core/duration.js';

describe('parseDurationMs', () => {
  const valid: [string, number][] = [
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['2h45m', 9_900_000],
    ['1h0m0.5s', 3_600_500],
    ['10', 10_000],
    ['2.5', 2_500],
    ['0', 0],
    ['0s', 0],
    [' 30s ', 30_000],
    ['1500us', 1.5],
  ];
  for (const [text, ms] of valid) {
    it(`reads "${text}" as ${ms} ms`, () => {
      assert.equal(parseDurationMs(text), ms);
    });
  }

  for (const text of [
    '10x',
    '-1s',
    '-1',
    's',
    '',
    '   ',
    'ms',
    '1 s',
    '1s2',
    'ten',
    '1d',
    '1.s.',
  ]) {
    it(`refuses "${text}"`, () => {
      assert.equal(parseDurationMs(text), undefined);
    });
  }
});

describe('formatDuration', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [500, '500ms'],
    [1500, '1.5s'],
    [10_000, '10s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [5_400_000, '1h30m0s'],
    [-90_000, '-1m30s'],
  ];
  for (const [ms, text] of cases) {
    it(`writes ${ms} ms as "${text}"`, () => {
      assert.equal(formatDuration(ms), text);
    });
  }

  it('round-trips through parseDurationMs', () => {
    for (const ms of [1, 999, 1000, 61_000, 3_723_000]) {
      assert.equal(parseDurationMs(formatDuration(ms)), ms);
    }
  });
});
