/**
 * The parts of a call's URL after `/<route>/<name>`, raw as the caller sent them: the path stays
 * percent-encoded (`/a%20b`, `/a%3Fb`), so that it is passed on, stored and replayed as it came,
 * and an encoded `?` never turns into a query. `path` is `''` for none (`/function/fn`,
 * `/function/fn/`); `query` is without its `?` and `undefined` when the URL has no `?`.
 */
export function callUrlParts(rawUrl: string): { path: string; query: string | undefined } {
  const queryAt = rawUrl.indexOf('?');
  const target = queryAt >= 0 ? rawUrl.slice(0, queryAt) : rawUrl;
  // Skip `/<route>/<name>`: the router matched them on the same raw segments.
  const nameAt = target.indexOf('/', 1);
  const restAt = nameAt >= 0 ? target.indexOf('/', nameAt + 1) : -1;
  const rest = restAt >= 0 ? target.slice(restAt) : '';
  return {
    path: rest === '/' ? '' : rest,
    query: queryAt >= 0 ? rawUrl.slice(queryAt + 1) : undefined,
  };
}
