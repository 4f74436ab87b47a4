import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { openRequest, request, type HttpResult } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

/*
 * The HTTP requests a current faas-cli (0.16–0.18: github.com/openfaas/faas-cli with its own
 * `proxy` package, github.com/openfaas/go-sdk and github.com/openfaas/faas-provider/types) sends,
 * replayed byte for byte where it matters: method, path, query string (Go's url.Values.Encode:
 * keys sorted, keys with empty values left out by the CLI), headers and the JSON bodies exactly
 * as Go's json.Marshal writes them (struct field order, `omitempty`, sorted map keys, `<>&`
 * escaped as \u003c \u003e \u0026). Each answer is checked for what faas-cli does with it: the
 * status codes it takes as success, and the fields it reads, with types Go's json.Unmarshal
 * accepts (a wrong type there is an error in faas-cli, not a missing value).
 *
 * Sources (faas-cli master as of 2025): proxy/client.go (newRequest: `Content-Type:
 * application/json` only when there is a body, `User-Agent: faas-cli/<version>`, ClientAuth),
 * proxy/auth.go (NewCLIAuth), proxy/{list,describe,deploy,delete,logs,secret,scale,version}.go,
 * commands/{list,describe,deploy,invoke,logs,remove,ready,login,secret_*,namespaces_list,version}.go;
 * go-sdk client.go and functions.go; faas-provider types (FunctionDeployment, FunctionStatus,
 * FunctionUsage, Secret, requests.go) and logs/handler.go.
 */

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** proxy.NewClient: `UserAgent: fmt.Sprintf("faas-cli/%s", version.BuildVersion())`. */
const cliVersion = '0.18.1';
const cliUserAgent = `faas-cli/${cliVersion}`;
/** commands/invoke.go sets its own: `faas-cli/<version> (openfaas; <GOOS>; <GOARCH>)`. */
const invokeUserAgent = `faas-cli/${cliVersion} (openfaas; linux; amd64)`;
/** login, ready (gateway check) and go-sdk calls use a bare http.Client: Go's default agent. */
const goUserAgent = 'Go-http-client/1.1';
/**
 * Not logged in, proxy.NewCLIAuth finds no basic-auth config and returns a BearerToken with the
 * empty --token: `Authorization: Bearer ` is set, and Go trims the value when it writes it.
 */
const notLoggedIn = 'Bearer';
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

interface Wire {
  method: string;
  /** Path and query string, as Go writes them. */
  path: string;
  /** The JSON body, literally. */
  body?: string;
  /** The Authorization header; null: none. */
  auth?: string | null;
  userAgent?: string;
  /** Default: `application/json` when there is a body (proxy/client.go newRequest); null: none. */
  contentType?: string | null;
}

/** One request as Go's http.Client sends it (Content-Length for bodies, `Accept-Encoding: gzip`). */
function send(
  base: string,
  {
    method,
    path,
    body,
    auth = notLoggedIn,
    userAgent = cliUserAgent,
    contentType = body === undefined ? null : 'application/json',
  }: Wire,
): Promise<HttpResult> {
  const headers: OutgoingHttpHeaders = { 'User-Agent': userAgent, 'Accept-Encoding': 'gzip' };
  if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
  if (auth !== null) headers.Authorization = auth;
  if (contentType !== null) headers['Content-Type'] = contentType;
  return request(`${base}${path}`, { method, headers, body });
}

/** `res.status` is one faas-cli takes as success here. */
function assertStatusIn(res: HttpResult, accepted: number[], what: string): void {
  assert.ok(
    accepted.includes(res.status),
    `${what}: faas-cli needs ${accepted.join(' or ')}, the gateway answered ${res.status} ${res.text.trim()}`,
  );
}

// ---- What Go's json.Unmarshal accepts for the types faas-cli decodes into ----

type Check = (value: unknown) => boolean;
type Shape = Record<string, Check>;
type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const str: Check = (value) => typeof value === 'string';
const bool: Check = (value) => typeof value === 'boolean';
const num: Check = (value) => typeof value === 'number' && Number.isFinite(value);
/** Go's uint64: a JSON integer, not negative, no fraction. */
const uint: Check = (value) => Number.isInteger(value) && (value as number) >= 0;
/** time.Time.UnmarshalJSON: RFC 3339 text (fractional seconds allowed); null is a no-op. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const time: Check = (value) => typeof value === 'string' && rfc3339.test(value);
/** []byte: base64 text. */
const base64: Check = (value) =>
  typeof value === 'string' &&
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value);
const stringMap: Check = (value) => isObject(value) && Object.values(value).every(str);
const strings: Check = (value) => Array.isArray(value) && value.every(str);
/** A struct (or a pointer to one): each known field of the right type; null fields are no-ops. */
const struct =
  (shape: Shape): Check =>
  (value) =>
    isObject(value) && badFields(value, shape).length === 0;

function badFields(value: JsonObject, shape: Shape): string[] {
  return Object.entries(shape)
    .filter(([key, check]) => key in value && value[key] !== null && !check(value[key]))
    .map(([key]) => `${key}=${JSON.stringify(value[key])}`);
}

/** faas-provider types.FunctionResources. */
const functionResources: Shape = { memory: str, cpu: str };
/** faas-provider types.FunctionStatus (function_status.go). */
const functionStatus: Shape = {
  name: str,
  image: str,
  namespace: str,
  envProcess: str,
  envVars: stringMap,
  constraints: strings,
  secrets: strings,
  labels: stringMap,
  annotations: stringMap,
  limits: struct(functionResources),
  requests: struct(functionResources),
  readOnlyRootFilesystem: bool,
  invocationCount: num,
  replicas: uint,
  availableReplicas: uint,
  createdAt: time,
  usage: struct({ cpu: num, totalMemoryBytes: num }),
};
/** faas-provider types.Secret. */
const secretShape: Shape = { name: str, namespace: str, value: str, rawValue: base64 };
/** faas-provider logs.Message. */
const logMessage: Shape = { name: str, namespace: str, instance: str, timestamp: time, text: str };
/** faas-provider types.VersionInfo. */
const versionInfo: Shape = { commit_message: str, sha: str, release: str };

/** JSON.parse, then the checks Go's decoder would make for `shape`. */
function goDecode<T>(text: string, shape: Shape, what: string): T {
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text)), `${what}: not JSON: ${text}`);
  assert.ok(isObject(value), `${what}: not a JSON object: ${text}`);
  assert.deepEqual(badFields(value, shape), [], `${what}: fields Go cannot decode`);
  return value as T;
}

/** A JSON array of `shape` (or null: a nil slice). */
function goDecodeArray<T>(text: string, shape: Shape, what: string): T[] {
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text)), `${what}: not JSON: ${text}`);
  if (value === null) return [];
  assert.ok(Array.isArray(value), `${what}: not a JSON array: ${text}`);
  for (const [index, item] of value.entries()) {
    assert.ok(isObject(item), `${what}[${index}]: not an object`);
    assert.deepEqual(badFields(item, shape), [], `${what}[${index}]: fields Go cannot decode`);
  }
  return value as T[];
}

/** The NDJSON of /system/logs, each line as logs.Message. */
function goDecodeLogLines(text: string, what: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, index) => goDecode<LogLine>(line, logMessage, `${what} line ${index}`));
}

interface FunctionStatusWire {
  name: string;
  image: string;
  namespace?: string;
  envProcess?: string;
  envVars?: Record<string, string> | null;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
  invocationCount?: number;
  replicas?: number;
  availableReplicas?: number;
  createdAt?: string;
}

interface SecretWire {
  name: string;
  namespace?: string;
}

interface LogLine {
  name: string;
  namespace: string;
  instance: string;
  timestamp: string;
  text: string;
}

/** time.Time.Format(time.RFC3339) of `at` in a zone `offsetMinutes` east of UTC (Z for UTC). */
function goRfc3339(at: Date, offsetMinutes = 0): string {
  const wall = new Date(at.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19);
  if (offsetMinutes === 0) return `${wall}Z`;
  const abs = Math.abs(offsetMinutes);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${wall}${offsetMinutes > 0 ? '+' : '-'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** The body proxy/deploy.go marshals for `faas-cli deploy --image <image> --name <name> --fprocess cat`. */
const deployBody = (name: string, image = 'fnbus/cat:latest') =>
  `{"service":"${name}","image":"${image}","envProcess":"cat","labels":{},"annotations":{}}`;

describe('the gateway answers the requests of faas-cli 0.18 the way faas-cli needs', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let secured: ReturnType<typeof buildGateway>;
  let url: string;
  let securedUrl: string;
  /** A ready `cat` function deployed by the suite (not part of what is replayed). */
  const shared = uniqueName('shared');
  const admin = basic('admin', 'open sesame');

  /** Deploys through the gateway under test as plainly as possible, and waits until it is ready. */
  const deployReady = async (service: string, extra: Record<string, unknown> = {}) => {
    const res = await gateway.inject({
      method: 'POST',
      url: '/system/functions',
      payload: { service, image: 'fnbus/cat:latest', envProcess: 'cat', ...extra },
    });
    assert.equal(res.statusCode, 202, res.body);
    await waitReady(service);
  };

  /** `faas-cli ready <name>` (commands/ready.go): GET /system/function/<name>?usage=1 until availableReplicas > 0. */
  const waitReady = (service: string, base?: string, auth?: string) =>
    waitFor(
      async () => {
        const res = await send(base ?? url, {
          method: 'GET',
          path: `/system/function/${service}?usage=1`,
          ...(auth ? { auth } : {}),
        });
        if (res.status !== 200) return false;
        const status = goDecode<FunctionStatusWire>(res.text, functionStatus, 'ready');
        return (status.availableReplicas ?? 0) > 0;
      },
      { timeoutMs: 15_000, what: `${service} to be ready` },
    );

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-faas-cli-wire-') });
    await provider.start();
    gateway = buildGateway({
      provider,
      config: readConfig({ basic_auth: 'false' }),
      version: { release: '0.1.0', sha: 'unknown' },
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
    // The same functions behind basic auth, as `faas-cli login` users meet them.
    secured = buildGateway({
      provider,
      config: readConfig({
        basic_auth: 'true',
        secret_mount_path: makeTempDir('fnbus-faas-cli-wire-auth-'),
      }),
      credentials: { user: 'admin', password: 'open sesame' },
    });
    await secured.listen({ port: 0, host: '127.0.0.1' });
    securedUrl = `http://127.0.0.1:${(secured.server.address() as AddressInfo).port}`;
    await deployReady(shared);
  });
  after(async () => {
    await secured.close();
    await gateway.close();
    await provider.close();
  });

  it('faas-cli version: GET /system/info', async () => {
    // commands/version.go printServerVersions → proxy/version.go GetSystemInfo: no query, no body.
    const res = await send(url, { method: 'GET', path: '/system/info' });
    assert.equal(res.status, 200, res.text);
    // Decoded into faas gateway types.GatewayInfo; faas-cli then reads Version.Release,
    // Version.SHA, Provider.Name ("provider"), Provider.Orchestration, Provider.Version.Release and
    // Provider.Version.SHA, dereferencing each pointer: none may be missing or null.
    const info = goDecode<{
      provider: JsonObject;
      version: JsonObject;
      arch?: string;
    }>(
      res.text,
      {
        provider: struct({ provider: str, orchestration: str }),
        version: struct(versionInfo),
        arch: str,
      },
      'GatewayInfo',
    );
    assert.ok(isObject(info.version), 'version must be an object (faas-cli dereferences it)');
    assert.equal(typeof info.version.release, 'string');
    assert.equal(typeof info.version.sha, 'string');
    assert.ok(isObject(info.provider), 'provider must be an object (faas-cli dereferences it)');
    assert.equal(typeof info.provider.provider, 'string');
    assert.equal(typeof info.provider.orchestration, 'string');
    assert.ok(isObject(info.provider.version), 'provider.version must be an object');
    assert.deepEqual(badFields(info.provider.version, versionInfo), []);
    assert.equal(typeof info.provider.version.release, 'string');
    assert.equal(typeof info.provider.version.sha, 'string');
  });

  it('faas-cli deploy --image --name --fprocess cat: PUT, POST after the 404, PUT again to update', async () => {
    const name = uniqueName('deploy');
    // commands/deploy.go deployImage → proxy/deploy.go deploy(): json.Marshal of
    // types.FunctionDeployment. namespace "" is omitempty; envVars {} (util.ParseMap) and
    // constraints/secrets [] (the flags' defaults) are omitempty and empty, so left out; labels and
    // annotations are *map[string]string pointing at empty maps: a non-nil pointer is written, as {};
    // limits/requests are nil pointers and readOnlyRootFilesystem false: left out.
    const body = deployBody(name);
    // --update defaults to true: PUT first (proxy/deploy.go DeployFunction)...
    const put = await send(url, { method: 'PUT', path: '/system/functions', body });
    // ...and only a 404 makes faas-cli send the same body again with POST.
    assert.equal(put.status, 404, `the update of an unknown function: ${put.status} ${put.text}`);
    const post = await send(url, { method: 'POST', path: '/system/functions', body });
    // proxy/deploy.go prints "Deployed" for 200, 201 and 202, but commands/deploy.go
    // badStatusCode fails the command for anything but 200 or 202.
    assertStatusIn(post, [200, 202], 'deploy (POST /system/functions)');
    await waitReady(name);

    // Deploying again updates: PUT answers 200 ("already exists, attempting rolling-update") or 202.
    const again = await send(url, {
      method: 'PUT',
      path: '/system/functions',
      body: deployBody(name, 'fnbus/cat:v2'),
    });
    assertStatusIn(again, [200, 202], 'redeploy (PUT /system/functions)');
    await waitFor(
      async () => {
        const res = await send(url, { method: 'GET', path: `/system/function/${name}?usage=1` });
        const status = goDecode<FunctionStatusWire>(res.text, functionStatus, 'describe');
        return status.image === 'fnbus/cat:v2' && (status.availableReplicas ?? 0) > 0;
      },
      { timeoutMs: 15_000, what: 'the update to be ready' },
    );
  });

  it('faas-cli deploy with every flag: env, label, annotation, constraint, readonly, limits, requests, namespace', async () => {
    const name = uniqueName('flags');
    // faas-cli deploy --image fnbus/cat:latest --name <name> --fprocess "sh -c 'cat 2>&1'"
    //   -n openfaas-fn --env B=2 --env A=1 --label team=core --annotation topic=orders
    //   --constraint 'node.platform.os == linux' --readonly --cpu-limit 100m --memory-limit 128Mi
    //   --cpu-request 50m --memory-request 64Mi
    // Field order is the struct's; map keys are sorted; Go escapes > and & in strings.
    const body =
      `{"service":"${name}","image":"fnbus/cat:latest","namespace":"openfaas-fn",` +
      `"envProcess":"sh -c 'cat 2\\u003e\\u00261'","envVars":{"A":"1","B":"2"},` +
      `"constraints":["node.platform.os == linux"],"labels":{"team":"core"},` +
      `"annotations":{"topic":"orders"},"limits":{"memory":"128Mi","cpu":"100m"},` +
      `"requests":{"memory":"64Mi","cpu":"50m"},"readOnlyRootFilesystem":true}`;
    assert.equal((JSON.parse(body) as { envProcess: string }).envProcess, "sh -c 'cat 2>&1'");
    const put = await send(url, { method: 'PUT', path: '/system/functions', body });
    assert.equal(put.status, 404, `the update of an unknown function: ${put.status} ${put.text}`);
    const post = await send(url, { method: 'POST', path: '/system/functions', body });
    assertStatusIn(post, [200, 202], 'deploy with every flag');
    // faas-cli ready <name> -n openfaas-fn: the namespace rides in the query, before usage.
    const status = await waitFor(
      async () => {
        const res = await send(url, {
          method: 'GET',
          path: `/system/function/${name}?namespace=openfaas-fn&usage=1`,
        });
        if (res.status !== 200) return false;
        const fn = goDecode<FunctionStatusWire>(res.text, functionStatus, 'describe');
        return (fn.availableReplicas ?? 0) > 0 && fn;
      },
      { timeoutMs: 15_000, what: `${name} to be ready` },
    );
    assert.equal(status.envProcess, "sh -c 'cat 2>&1'");
    assert.deepEqual(status.envVars, { A: '1', B: '2' });
    assert.equal(status.labels?.team, 'core');
    assert.equal(status.annotations?.topic, 'orders');
    const res = await request(`${url}/function/${name}`, { method: 'POST', body: 'x' });
    assert.equal(res.text, 'x');
  });

  it('faas-cli list, list -v, list -q, list -n: GET /system/functions', async () => {
    // commands/list.go → proxy/list.go ListFunctions: the namespace key only when -n is given.
    for (const path of ['/system/functions', '/system/functions?namespace=openfaas-fn']) {
      const res = await send(url, { method: 'GET', path });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      // Decoded into []types.FunctionStatus; list prints Name, InvocationCount (as int64),
      // Replicas (%d), with -v Image and CreatedAt too; --sort reads InvocationCount and CreatedAt.
      const functions = goDecodeArray<FunctionStatusWire>(res.text, functionStatus, path);
      const fn = functions.find((candidate) => candidate.name === shared);
      assert.ok(fn, `${shared} is listed by ${path}`);
      assert.equal(fn.image, 'fnbus/cat:latest');
      assert.equal(fn.replicas, 1);
      assert.ok(fn.createdAt !== undefined && time(fn.createdAt), 'createdAt for list -v');
    }
  });

  it('faas-cli invoke: POST /function/<name>.openfaas-fn with the body from stdin', async () => {
    // commands/invoke.go → go-sdk functions.go InvokeFunction: the namespace defaults to
    // openfaas-fn and is always in the path; Content-Type from --content-type (text/plain); no
    // Authorization (function routes are not behind basic auth). Success is any 2xx.
    const headers = {
      'User-Agent': invokeUserAgent,
      'Content-Type': 'text/plain',
      'Accept-Encoding': 'gzip',
    };
    const body = 'hello faas-cli\n';
    const res = await request(`${url}/function/${shared}.openfaas-fn`, {
      method: 'POST',
      headers: { ...headers, 'Content-Length': Buffer.byteLength(body) },
      body,
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, body);

    // faas-cli invoke <name> --query repo=faas-cli --query org=openfaas -H 'X-Ping-Url: http://x'
    // --content-type application/json: the query is url.Values.Encode()d, so sorted.
    const json = '{"a":1}';
    const withQuery = await request(
      `${url}/function/${shared}.openfaas-fn?org=openfaas&repo=faas-cli`,
      {
        method: 'POST',
        headers: {
          ...headers,
          'Content-Type': 'application/json',
          'X-Ping-Url': 'http://x',
          'Content-Length': Buffer.byteLength(json),
        },
        body: json,
      },
    );
    assert.equal(withQuery.status, 200, withQuery.text);
    assert.equal(withQuery.text, json);

    // faas-cli invoke <name> --method GET < /dev/null: no body, so no Content-Length.
    const get = await request(`${url}/function/${shared}.openfaas-fn`, { method: 'GET', headers });
    assert.equal(get.status, 200, get.text);

    // proxy/invoke.go InvokeFunction (still in faas-cli, used by older commands): no namespace
    // in the path unless one is given.
    const plain = await request(`${url}/function/${shared}`, {
      method: 'POST',
      headers: { ...headers, 'Content-Length': 2 },
      body: 'hi',
    });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.text, 'hi');
  });

  it('faas-cli describe: GET /system/function/<name>?usage=1, then the list for invocationCount', async () => {
    const called = await request(`${url}/function/${shared}`, { method: 'POST', body: 'count me' });
    assert.equal(called.status, 200);
    // commands/describe.go → proxy/describe.go GetFunctionInfo: `usage=1` always, `namespace`
    // only with -n (url.Values.Encode sorts: namespace before usage).
    for (const query of ['?usage=1', '?namespace=openfaas-fn&usage=1']) {
      const res = await send(url, { method: 'GET', path: `/system/function/${shared}${query}` });
      assert.equal(res.status, 200, `${query}: ${res.text}`);
      // describe prints Name, Status (Ready when AvailableReplicas > 0), Replicas, Available
      // Replicas, Image, EnvProcess (<default> when ""), Labels, Annotations, Constraints,
      // EnvVars, Secrets, Requests, Limits and Usage.
      const fn = goDecode<FunctionStatusWire>(res.text, functionStatus, `describe${query}`);
      assert.equal(fn.name, shared);
      assert.equal(fn.image, 'fnbus/cat:latest');
      assert.equal(fn.envProcess, 'cat');
      assert.equal(fn.replicas, 1);
      assert.ok((fn.availableReplicas ?? 0) >= 1, 'Status: Ready');
    }
    // Then ListFunctions with the same namespace; the count is matched on Name.
    const list = await send(url, { method: 'GET', path: '/system/functions' });
    assert.equal(list.status, 200);
    const listed = goDecodeArray<FunctionStatusWire>(list.text, functionStatus, 'list').find(
      (fn) => fn.name === shared,
    );
    assert.ok((listed?.invocationCount ?? 0) >= 1, 'invocationCount counts the call');

    // An unknown function: faas-cli needs 404 to say "no such function".
    const missing = await send(url, { method: 'GET', path: '/system/function/nope-x1?usage=1' });
    assert.equal(missing.status, 404);
  });

  it('faas-cli logs --tail=false --lines / --since: GET /system/logs?follow=false&name=…', async () => {
    const name = uniqueName('logs');
    await deployReady(name, {
      envProcess: `sh -c 'cat; echo called >&2'`,
      envVars: { combine_output: 'false' },
    });
    assert.equal(
      (await request(`${url}/function/${name}`, { method: 'POST', body: 'a' })).text,
      'a',
    );

    // commands/logs.go → proxy/logs.go reqAsQueryValues, Encode()d (sorted): name, namespace
    // only if set, follow always (strconv.FormatBool), instance if set, since if set
    // (RFC 3339, seconds), tail if not 0.
    // faas-cli logs <name> --tail=false --lines=5
    const lines = await waitFor(
      async () => {
        const res = await send(url, {
          method: 'GET',
          path: `/system/logs?follow=false&name=${name}&tail=5`,
        });
        assert.equal(res.status, 200, res.text);
        assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
        const got = goDecodeLogLines(res.text, 'logs');
        return got.some((line) => line.text.includes('called')) && got;
      },
      { what: 'the call to be logged' },
    );
    assert.ok(lines.length <= 5);
    for (const line of lines) {
      assert.equal(line.name, name);
      assert.equal(line.namespace, 'openfaas-fn');
    }

    // faas-cli logs <name> --tail=false --since=10m -n openfaas-fn, from a machine in UTC and
    // from one two hours east of it (time.RFC3339 writes the local offset; QueryEscape encodes
    // ':' and '+').
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    for (const since of [goRfc3339(tenMinutesAgo), goRfc3339(tenMinutesAgo, 120)]) {
      const res = await send(url, {
        method: 'GET',
        path: `/system/logs?follow=false&name=${name}&namespace=openfaas-fn&since=${encodeURIComponent(since)}`,
      });
      assert.equal(res.status, 200, `since=${since}: ${res.text}`);
      assert.ok(goDecodeLogLines(res.text, 'logs --since').some((l) => l.text.includes('called')));
    }

    // go-sdk client.go GetLogs (the SDK's form of the same call): follow=0/1, tail only if not 0.
    const sdk = await send(url, {
      method: 'GET',
      path: `/system/logs?follow=0&name=${name}`,
      userAgent: goUserAgent,
      auth: null,
    });
    assert.equal(sdk.status, 200, sdk.text);
  });

  it('faas-cli logs <name> with its defaults: GET /system/logs?follow=true&name=…&tail=-1', async () => {
    const name = uniqueName('follow');
    await deployReady(name, {
      envProcess: `sh -c 'cat; echo called >&2'`,
      envVars: { combine_output: 'false' },
    });
    // commands/logs.go: --tail (follow) defaults to true and --lines to -1 ("unlimited if <=0");
    // reqAsQueryValues sends tail whenever it is not 0, so tail=-1 goes on the wire. OpenFaaS
    // (faas-provider logs/handler.go parseRequest) reads it with strconv.Atoi: -1 is valid and
    // means no limit.
    const { req, response, responseStarted } = openRequest(
      `${url}/system/logs?follow=true&name=${name}&tail=-1`,
      {
        method: 'GET',
        headers: {
          'User-Agent': cliUserAgent,
          'Accept-Encoding': 'gzip',
          Authorization: notLoggedIn,
        },
        timeoutMs: 20_000,
      },
    );
    let text = '';
    req.once('response', (res) => res.on('data', (chunk: Buffer) => (text += chunk.toString())));
    req.end();
    try {
      const res = await responseStarted;
      if (res.statusCode !== 200) {
        const whole = await response;
        assert.fail(
          `faas-cli logs needs 200, the gateway answered ${whole.status} ${whole.text.trim()}`,
        );
      }
      assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
      // The stream stays open: a call made now shows up in it.
      assert.equal(
        (await request(`${url}/function/${name}`, { method: 'POST', body: 'b' })).text,
        'b',
      );
      await waitFor(
        () =>
          goDecodeLogLines(text.slice(0, text.lastIndexOf('\n') + 1), 'follow').some((l) =>
            l.text.includes('called'),
          ),
        { timeoutMs: 10_000, what: 'the followed line' },
      );
    } finally {
      req.destroy();
    }
  });

  it('faas-cli secret create / list / update: POST, GET, PUT /system/secrets', async () => {
    const literal = uniqueName('lit');
    const fromFile = uniqueName('file');
    // faas-cli secret create <literal> --from-literal=v1 → proxy/secret.go CreateSecret:
    // types.Secret with namespace "", rawValue nil (both omitempty). Success: 200, 201 or 202.
    const created = await send(url, {
      method: 'POST',
      path: '/system/secrets',
      body: `{"name":"${literal}","value":"v1"}`,
    });
    assertStatusIn(created, [200, 201, 202], 'secret create --from-literal');
    // faas-cli secret create <fromFile> --from-file=./f (the file holds "from a file\n"): rawValue
    // is the file's bytes (base64), value the same text, trimmed (--trim defaults to true).
    const rawValue = Buffer.from('from a file\n').toString('base64');
    const createdFromFile = await send(url, {
      method: 'POST',
      path: '/system/secrets',
      body: `{"name":"${fromFile}","value":"from a file","rawValue":"${rawValue}"}`,
    });
    assertStatusIn(createdFromFile, [200, 201, 202], 'secret create --from-file');
    // Creating it again: faas-cli needs 409 to say it exists, and with --replace to send a PUT.
    const twice = await send(url, {
      method: 'POST',
      path: '/system/secrets',
      body: `{"name":"${literal}","value":"v2"}`,
    });
    assert.equal(twice.status, 409, twice.text);
    const replaced = await send(url, {
      method: 'PUT',
      path: '/system/secrets',
      body: `{"name":"${literal}","value":"v2"}`,
    });
    // proxy/secret.go UpdateSecret: 200 or 202.
    assertStatusIn(replaced, [200, 202], 'secret create --replace (PUT)');

    // faas-cli secret list [-n openfaas-fn] → GetSecretList: 200 or 202, []types.Secret, prints Name.
    for (const path of ['/system/secrets', '/system/secrets?namespace=openfaas-fn']) {
      const res = await send(url, { method: 'GET', path });
      assertStatusIn(res, [200, 202], `secret list (${path})`);
      const names = goDecodeArray<SecretWire>(res.text, secretShape, path).map((s) => s.name);
      assert.ok(names.includes(literal) && names.includes(fromFile), names.join(', '));
    }

    // faas-cli secret update <literal> --from-literal=v3 -n openfaas-fn.
    const updated = await send(url, {
      method: 'PUT',
      path: '/system/secrets',
      body: `{"name":"${literal}","namespace":"openfaas-fn","value":"v3"}`,
    });
    assertStatusIn(updated, [200, 202], 'secret update');
    const unknown = await send(url, {
      method: 'PUT',
      path: '/system/secrets',
      body: '{"name":"nope-x1","value":"v"}',
    });
    assert.equal(unknown.status, 404, 'faas-cli says "unable to find secret" on 404');
  });

  it('faas-cli secret remove: DELETE /system/secrets {"name"}', async () => {
    const name = uniqueName('gone');
    const created = await send(url, {
      method: 'POST',
      path: '/system/secrets',
      body: `{"name":"${name}","value":"v"}`,
    });
    assertStatusIn(created, [200, 201, 202], 'secret create');
    // faas-cli secret remove <name> → proxy/secret.go RemoveSecret: types.Secret marshalled, so
    // just the name. faas-cli takes 200 and 202 as success (go-sdk DeleteSecret: 200, 201, 202);
    // anything else is "server returned unexpected status code".
    const removed = await send(url, {
      method: 'DELETE',
      path: '/system/secrets',
      body: `{"name":"${name}"}`,
    });
    const list = await send(url, { method: 'GET', path: '/system/secrets' });
    assert.ok(
      !goDecodeArray<SecretWire>(list.text, secretShape, 'secret list').some(
        (s) => s.name === name,
      ),
      'the secret is gone',
    );
    const again = await send(url, {
      method: 'DELETE',
      path: '/system/secrets',
      body: `{"name":"${name}","namespace":"openfaas-fn"}`,
    });
    assert.equal(again.status, 404, 'faas-cli says "unable to find secret" on 404');
    assertStatusIn(removed, [200, 202], 'secret remove');
  });

  it('faas-cli secret create with a dotted name (faas-cli allows DNS-1123 subdomains)', async () => {
    // commands/secret_create.go validateSecretName: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`,
    // a DNS-1123 subdomain (a Kubernetes secret name), so `db.password` reaches the gateway.
    const name = `${uniqueName('db')}.password`;
    const created = await send(url, {
      method: 'POST',
      path: '/system/secrets',
      body: `{"name":"${name}","value":"v"}`,
    });
    assertStatusIn(created, [200, 201, 202], `secret create ${name}`);
    const list = await send(url, { method: 'GET', path: '/system/secrets' });
    assert.ok(
      goDecodeArray<SecretWire>(list.text, secretShape, 'secret list').some((s) => s.name === name),
    );
  });

  it('faas-cli remove: DELETE /system/functions {"functionName"}', async () => {
    const name = uniqueName('remove');
    await deployReady(name);
    // faas-cli remove <name> → proxy/delete.go DeleteFunction: types.DeleteFunctionRequest,
    // namespace omitempty. 200, 201, 202 are success; 404 is "No existing function to remove".
    const removed = await send(url, {
      method: 'DELETE',
      path: '/system/functions',
      body: `{"functionName":"${name}"}`,
    });
    assertStatusIn(removed, [200, 201, 202], 'remove');
    const gone = await send(url, { method: 'GET', path: `/system/function/${name}?usage=1` });
    assert.equal(gone.status, 404);
    // faas-cli remove <name> -n openfaas-fn, once more.
    const again = await send(url, {
      method: 'DELETE',
      path: '/system/functions',
      body: `{"functionName":"${name}","namespace":"openfaas-fn"}`,
    });
    assert.equal(again.status, 404, again.text);
  });

  it('proxy.ScaleFunction / go-sdk ScaleFunction: POST /system/scale-function/<name>', async () => {
    const name = uniqueName('scale');
    await deployReady(name);
    // proxy/scale.go (and go-sdk client.go, same wire): types.ScaleServiceRequest, replicas a
    // uint64, namespace omitempty; no query. 200, 201 and 202 are success, 404 "not found".
    const scaled = await send(url, {
      method: 'POST',
      path: `/system/scale-function/${name}`,
      body: `{"serviceName":"${name}","replicas":2}`,
    });
    assertStatusIn(scaled, [200, 201, 202], 'scale');
    await waitFor(
      async () => {
        const res = await send(url, { method: 'GET', path: `/system/function/${name}?usage=1` });
        const fn = goDecode<FunctionStatusWire>(res.text, functionStatus, 'describe');
        return fn.replicas === 2 && fn.availableReplicas === 2;
      },
      { timeoutMs: 15_000, what: 'two replicas' },
    );
    const back = await send(url, {
      method: 'POST',
      path: `/system/scale-function/${name}`,
      body: `{"serviceName":"${name}","replicas":1,"namespace":"openfaas-fn"}`,
      userAgent: goUserAgent,
    });
    assertStatusIn(back, [200, 201, 202], 'scale with a namespace');
    const unknown = await send(url, {
      method: 'POST',
      path: '/system/scale-function/nope-x1',
      body: '{"serviceName":"nope-x1","replicas":1}',
    });
    assert.equal(unknown.status, 404);
  });

  it('faas-cli namespace list: GET /system/namespaces (go-sdk)', async () => {
    // commands/namespaces_list.go → go-sdk GetNamespaces: Go's agent, no Authorization when not
    // logged in (no ClientAuth), decoded into []string.
    const res = await send(url, {
      method: 'GET',
      path: '/system/namespaces',
      userAgent: goUserAgent,
      auth: null,
    });
    assert.equal(res.status, 200, res.text);
    const namespaces = JSON.parse(res.text) as unknown;
    assert.ok(strings(namespaces), res.text);
    assert.ok((namespaces as string[]).includes('openfaas-fn'));
  });

  describe('behind basic auth', () => {
    it('faas-cli login: GET /system/functions with the credentials, 200 or 401', async () => {
      // commands/login.go validateLogin: a bare http.Client, SetBasicAuth; 200 saves the
      // credentials, 401 is "either username or password is incorrect".
      const ok = await send(securedUrl, {
        method: 'GET',
        path: '/system/functions',
        auth: admin,
        userAgent: goUserAgent,
      });
      assert.equal(ok.status, 200, ok.text);
      const wrong = await send(securedUrl, {
        method: 'GET',
        path: '/system/functions',
        auth: basic('admin', 'wrong'),
        userAgent: goUserAgent,
      });
      assert.equal(wrong.status, 401);
    });

    it('answers a faas-cli that is not logged in with 401', async () => {
      // faas-cli reads 401 as "unauthorized access, run faas-cli login".
      for (const path of [
        '/system/functions',
        '/system/info',
        `/system/function/${shared}?usage=1`,
      ]) {
        const res = await send(securedUrl, { method: 'GET', path });
        assert.equal(res.status, 401, path);
        assert.equal(res.headers['www-authenticate'], 'Basic realm="Restricted"');
      }
    });

    it('serves a logged-in faas-cli: list, version, describe, deploy, secret list, namespace list, remove', async () => {
      const as = { auth: admin };
      assert.equal(
        (await send(securedUrl, { method: 'GET', path: '/system/functions', ...as })).status,
        200,
      );
      assert.equal(
        (await send(securedUrl, { method: 'GET', path: '/system/info', ...as })).status,
        200,
      );
      const described = await send(securedUrl, {
        method: 'GET',
        path: `/system/function/${shared}?usage=1`,
        ...as,
      });
      assert.equal(described.status, 200, described.text);
      assertStatusIn(
        await send(securedUrl, { method: 'GET', path: '/system/secrets', ...as }),
        [200, 202],
        'secret list',
      );
      const namespaces = await send(securedUrl, {
        method: 'GET',
        path: '/system/namespaces',
        userAgent: goUserAgent,
        ...as,
      });
      assert.equal(namespaces.status, 200);

      const name = uniqueName('authed');
      const body = deployBody(name);
      const put = await send(securedUrl, { method: 'PUT', path: '/system/functions', body, ...as });
      assert.equal(put.status, 404, put.text);
      const post = await send(securedUrl, {
        method: 'POST',
        path: '/system/functions',
        body,
        ...as,
      });
      assertStatusIn(post, [200, 202], 'deploy behind basic auth');
      await waitReady(name, securedUrl, admin);
      const removed = await send(securedUrl, {
        method: 'DELETE',
        path: '/system/functions',
        body: `{"functionName":"${name}"}`,
        ...as,
      });
      assertStatusIn(removed, [200, 201, 202], 'remove behind basic auth');
    });

    it('leaves faas-cli invoke and faas-cli ready (GET /healthz) without credentials', async () => {
      // invoke sends no Authorization at all (go-sdk InvokeFunction without --auth).
      const res = await request(`${securedUrl}/function/${shared}.openfaas-fn`, {
        method: 'POST',
        headers: {
          'User-Agent': invokeUserAgent,
          'Content-Type': 'text/plain',
          'Content-Length': 2,
        },
        body: 'ok',
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, 'ok');
      // faas-cli ready (no function): GET /healthz with a bare client until 200.
      const health = await send(securedUrl, {
        method: 'GET',
        path: '/healthz',
        userAgent: goUserAgent,
        auth: null,
      });
      assert.equal(health.status, 200);
    });
  });

  describe('what other OpenFaaS clients send', () => {
    it('takes an empty ?namespace= as the default namespace', async () => {
      // faas-cli 0.18 leaves an empty namespace out, but clients that always add the key send it.
      const list = await send(url, { method: 'GET', path: '/system/functions?namespace=' });
      assert.equal(list.status, 200, list.text);
      assert.ok(
        goDecodeArray<FunctionStatusWire>(list.text, functionStatus, 'list').some(
          (fn) => fn.name === shared,
        ),
      );
      const described = await send(url, {
        method: 'GET',
        path: `/system/function/${shared}?namespace=&usage=1`,
      });
      assert.equal(described.status, 200, described.text);
      const secrets = await send(url, { method: 'GET', path: '/system/secrets?namespace=' });
      assert.equal(secrets.status, 200, secrets.text);
    });

    it('go-sdk Deploy / Update / DeleteFunction: no Content-Type header at all', async () => {
      const name = uniqueName('sdk');
      // go-sdk client.go deploy(): http.NewRequestWithContext with the JSON body and no
      // Content-Type; success is 200, 201 or 202. A FunctionDeployment built in Go with nil
      // Labels/Annotations pointers leaves them out; one holding pointers to nil maps sends null.
      const body = `{"service":"${name}","image":"fnbus/cat:latest","envProcess":"cat","labels":null,"annotations":null}`;
      const sdk = { userAgent: goUserAgent, auth: null, contentType: null };
      const deployed = await send(url, { method: 'POST', path: '/system/functions', body, ...sdk });
      assertStatusIn(deployed, [200, 201, 202], 'go-sdk Deploy');
      await waitReady(name);
      const updated = await send(url, { method: 'PUT', path: '/system/functions', body, ...sdk });
      assertStatusIn(updated, [200, 201, 202], 'go-sdk Update');
      const removed = await send(url, {
        method: 'DELETE',
        path: '/system/functions',
        body: `{"functionName":"${name}","namespace":"openfaas-fn"}`,
        ...sdk,
      });
      assertStatusIn(removed, [200, 201, 202], 'go-sdk DeleteFunction');
    });
  });
});
