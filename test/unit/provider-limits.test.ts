import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import {
  effectiveLimits,
  openFileLimit,
  readProviderLimits,
  replicasThatFit,
} from '../../deploy/process/limits.js';

describe('process provider limits', () => {
  it('reads max_functions, max_replicas_per_function and max_total_replicas, naming every bad one', () => {
    assert.deepEqual(readProviderLimits({}), {});
    assert.deepEqual(
      readProviderLimits({
        max_functions: '10',
        max_replicas_per_function: '2',
        max_total_replicas: '20',
      }),
      { maxFunctions: 10, maxReplicas: 2, maxTotalReplicas: 20 },
    );
    assert.throws(
      () => readProviderLimits({ max_functions: '0', max_total_replicas: 'lots' }),
      (error: ConfigError) =>
        error instanceof ConfigError &&
        error.problems.length === 2 &&
        /max_functions/.test(error.problems[0] ?? '') &&
        /max_total_replicas/.test(error.problems[1] ?? ''),
    );
  });

  it('fits the total of replicas in the open-file limit, lowering a configured cap that does not fit', () => {
    assert.equal(replicasThatFit(1024), 192);
    assert.equal(replicasThatFit(100), 1);
    const lowFds = effectiveLimits({ maxTotalReplicas: 500, maxReplicas: 300 }, 1024);
    assert.equal(lowFds.maxTotalReplicas, 192);
    assert.equal(lowFds.maxReplicas, 192);
    assert.equal(lowFds.lowered.length, 2);
    const defaults = effectiveLimits({}, 1_048_576);
    assert.deepEqual(
      [defaults.maxFunctions, defaults.maxReplicas, defaults.maxTotalReplicas, defaults.lowered],
      [1000, 100, 1000, []],
    );
    // Defaults that do not fit are lowered without a warning: nobody asked for them.
    assert.deepEqual(effectiveLimits({}, 512).lowered, []);
    assert.equal(effectiveLimits({}, 512).maxTotalReplicas, 64);
  });

  it("reads this process's open-file limit as `ulimit -n` says it", () => {
    const shell = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(String(openFileLimit() ?? 'unlimited'), shell);
  });
});
