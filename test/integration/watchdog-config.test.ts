import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { repoRoot, runWatchdogCli, type CliResult } from '../helpers/watchdog.js';

/** Asserts that the watchdog refused to start, naming each of `variables` on stderr. */
function assertRefused(result: CliResult, variables: string[]): void {
  assert.equal(result.code, 1, `exit ${result.code} (${result.signal}); stderr:\n${result.stderr}`);
  for (const variable of variables) {
    assert.match(
      result.stderr,
      new RegExp(`\\b${variable}\\b`),
      `stderr should name ${variable}:\n${result.stderr}`,
    );
  }
  assert.doesNotMatch(result.stderr, /watchdog ready/);
}

describe('bad configuration', () => {
  it('refuses to start without fprocess', async () => {
    assertRefused(await runWatchdogCli({}), ['fprocess']);
  });

  it('refuses an empty fprocess', async () => {
    assertRefused(await runWatchdogCli({ fprocess: '  ' }), ['fprocess']);
  });

  it('refuses read_timeout=10x', async () => {
    const result = await runWatchdogCli({ fprocess: 'cat', read_timeout: '10x' });
    assertRefused(result, ['read_timeout']);
    assert.match(result.stderr, /10x/);
  });

  it('refuses mode=bogus', async () => {
    const result = await runWatchdogCli({ fprocess: 'cat', mode: 'bogus' });
    assertRefused(result, ['mode']);
    assert.match(result.stderr, /bogus/);
  });

  it('refuses http mode without upstream_url', async () => {
    assertRefused(await runWatchdogCli({ fprocess: 'cat', mode: 'http' }), ['upstream_url']);
  });

  it('refuses an upstream_url that is not an http:// URL', async () => {
    assertRefused(
      await runWatchdogCli({ fprocess: 'cat', mode: 'http', upstream_url: 'not a url' }),
      ['upstream_url'],
    );
  });

  it('names every problem in one run', async () => {
    const result = await runWatchdogCli({
      fprocess: 'cat',
      mode: 'http',
      exec_timeout: 'abc',
      max_inflight: '-2',
    });
    assertRefused(result, ['upstream_url', 'exec_timeout', 'max_inflight']);
  });

  it('refuses shell operators in fprocess, naming fprocess', async () => {
    const result = await runWatchdogCli({ fprocess: 'a | b' });
    assertRefused(result, ['fprocess']);
  });

  it('refuses write_timeout=0', async () => {
    assertRefused(await runWatchdogCli({ fprocess: 'cat', write_timeout: '0' }), ['write_timeout']);
  });

  it('refuses a port out of range and a boolean that is not one', async () => {
    const result = await runWatchdogCli({
      fprocess: 'cat',
      port: '70000',
      combine_output: 'maybe',
    });
    assertRefused(result, ['port', 'combine_output']);
  });
});

describe('command line', () => {
  it('exits 2 for an unknown argument', async () => {
    const result = await runWatchdogCli({ fprocess: 'cat' }, ['--bogus']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--bogus/);
  });

  it('prints the package version with --version', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    const result = await runWatchdogCli({}, ['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout.trim(), version);
  });

  it('prints help with --help', async () => {
    const result = await runWatchdogCli({}, ['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--run-healthcheck/);
  });
});
