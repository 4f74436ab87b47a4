import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { imageTag, tagMode } from '../../cli/image-tag.js';
import { loadStack } from '../../cli/stack.js';
import { stackDeployment } from '../../cli/stack-deployments.js';
import { ValidationError } from '../../core/errors.js';
import { commitAll, git } from '../helpers/git.js';
import { makeTempDir } from '../helpers/watchdog.js';

describe('image tags (faas-cli --tag)', () => {
  it('latest: the name as given, :latest when it has no tag (a registry port is not a tag)', () => {
    const dir = makeTempDir('fnbus-tag-');
    assert.equal(imageTag('example/fn', 'latest', dir), 'example/fn:latest');
    assert.equal(imageTag('example/fn:2', 'latest', dir), 'example/fn:2');
    assert.equal(imageTag('127.0.0.1:5000/fn', 'latest', dir), '127.0.0.1:5000/fn:latest');
  });

  it('sha, branch and describe from the stack folder’s git', () => {
    const dir = makeTempDir('fnbus-tag-');
    git(dir, 'init', '-q', '-b', 'feature/new-thing');
    writeFileSync(join(dir, 'stack.yml'), 'functions: {}\n');
    const sha = commitAll(dir, 'first');
    git(dir, 'tag', 'v1.2.0');
    assert.equal(imageTag('127.0.0.1:5000/fn', 'sha', dir), `127.0.0.1:5000/fn:latest-${sha}`);
    assert.equal(imageTag('fn:0.3', 'branch', dir), `fn:0.3-feature-new-thing-${sha}`);
    assert.equal(imageTag('fn', 'describe', dir), 'fn:latest-v1.2.0');
  });

  it('refuses a mode it does not know, naming the ones there are', () => {
    assert.equal(tagMode('sha'), 'sha');
    assert.throws(
      () => tagMode('digest'),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.message === '--tag takes latest, sha, branch, describe, not "digest"',
    );
  });

  it('a stack deploys its template functions as tagged; an image it does not build as named', () => {
    const dir = makeTempDir('fnbus-tag-');
    const stackFile = join(dir, 'stack.yml');
    writeFileSync(
      stackFile,
      [
        'provider:',
        '  name: openfaas',
        'functions:',
        '  echo:',
        '    image: example/echo:2',
        '    fprocess: cat',
        '  greet:',
        '    lang: node',
        '    handler: ./greet',
        '    image: example/greet:1',
        '',
      ].join('\n'),
    );
    const stack = loadStack(stackFile, {});
    // Not a git repository: only a function built here needs git for its tag.
    assert.equal(stackDeployment('echo', stack, undefined, 'sha').image, 'example/echo:2');
    assert.equal(stackDeployment('greet', stack).image, 'example/greet:1');
    assert.throws(() => stackDeployment('greet', stack, undefined, 'sha'), ValidationError);
  });
});
