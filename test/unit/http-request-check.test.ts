import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  headerProblems,
  methodProblem,
  pathProblem,
  queryProblem,
  requestProblems,
} from '../../core/http-request-check.js';
import { callUrlParts } from '../../gateway/call-url.js';

describe('requestProblems: what no HTTP request can carry', () => {
  it('takes raw paths, and refuses decoded text, ? and #, bad escapes and non-ASCII', () => {
    for (const path of ['', '/', '/a%20b', '/a%3Fb', '/o/1;v=2', "/a!$&'()*+,;=:@~-._", '/%2F']) {
      assert.equal(pathProblem(path), undefined, path);
    }
    for (const path of ['/a b', 'a', '/a?b', '/a#b', '/a%zz', '/a%2', '/é', '/a\r\nb', '/\0']) {
      assert.match(pathProblem(path) ?? '', /is not a percent-encoded path/, path);
    }
    assert.match(pathProblem(undefined) ?? '', /path "undefined"/);
  });

  it('takes raw queries; refuses spaces, control characters and #', () => {
    assert.equal(queryProblem(''), undefined);
    assert.equal(queryProblem('a=1&b=%20x&c'), undefined);
    for (const query of ['a b', 'a\nb', 'a#b', 'é']) assert.ok(queryProblem(query), query);
  });

  it('takes methods that are tokens, but not CONNECT or TRACE', () => {
    for (const method of ['GET', 'POST', 'PATCH', 'PROPFIND']) {
      assert.equal(methodProblem(method), undefined);
    }
    assert.match(methodProblem('GE T') ?? '', /not an HTTP token/);
    assert.match(methodProblem('') ?? '', /not an HTTP token/);
    assert.match(methodProblem('CONNECT') ?? '', /not a function call/);
    assert.match(methodProblem('trace') ?? '', /not a function call/);
  });

  it('refuses header names that are not tokens and values with CR, LF or NUL, naming each', () => {
    assert.deepEqual(headerProblems({ 'X-Ok': ['a', 'b\tc'], 'X-Latin': 'caf\u00e9' }), []);
    assert.deepEqual(
      headerProblems({ 'Bad Name': 'x', 'X-Ok': 'fine', 'X-Crlf': ['ok', 'a\r\nb'] }),
      [
        'header name "Bad Name" is not an HTTP token',
        'header X-Crlf: a value has a character a header cannot carry (CR, LF, NUL…)',
      ],
    );
    assert.equal(headerProblems({ 'X-Nul': 'a\0' }).length, 1);
    assert.equal(headerProblems({ 'X-Wide': '\u20ac' }).length, 1, 'past latin-1');
    assert.equal(headerProblems({ 'X-Number': [1] }).length, 1, 'not text');
    assert.deepEqual(headerProblems(null), ['headers are not a map of names to values']);
    assert.equal(headerProblems({ '': 'x' }).length, 1);
  });

  it('reports every problem at once', () => {
    const problems = requestProblems({
      method: 'GE T',
      path: '/a b',
      query: 'c d',
      headers: { 'X-A': 'a\nb' },
    });
    assert.equal(problems.length, 4);
    assert.deepEqual(
      requestProblems({ method: 'POST', path: '', query: '', headers: { 'X-A': ['1'] } }),
      [],
    );
  });
});

describe('callUrlParts: the raw path and query after /<route>/<name>', () => {
  it('keeps the path encoded and splits the query at the first raw ?', () => {
    assert.deepEqual(callUrlParts('/function/fn/a%3Fb/c?x=1?y'), {
      path: '/a%3Fb/c',
      query: 'x=1?y',
    });
    assert.deepEqual(callUrlParts('/async-function/fn.ns/a%20b'), {
      path: '/a%20b',
      query: undefined,
    });
    assert.deepEqual(callUrlParts('/function/fn'), { path: '', query: undefined });
    assert.deepEqual(callUrlParts('/function/fn/'), { path: '', query: undefined });
    assert.deepEqual(callUrlParts('/function/fn?'), { path: '', query: '' });
    assert.deepEqual(callUrlParts('/function/a%2Fb/c'), { path: '/c', query: undefined });
  });
});
