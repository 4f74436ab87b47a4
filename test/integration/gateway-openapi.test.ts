import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { fuzzPython } from '../fuzz/python.js';
import { request } from '../helpers/http.js';
import { baseProvider } from '../helpers/providers.js';
import { makeTempDir } from '../helpers/watchdog.js';

interface Operation {
  responses?: Record<string, { description: string }>;
  security?: Record<string, string[]>[];
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, { type: string; scheme: string }> };
}

const credentials = { user: 'admin', password: 'openapi-test' };
const authorization = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`;
const openRoutes = /^\/(function|async-function|webhook)\/|^\/(healthz|metrics)$/;

describe('the OpenAPI document, and 405 for a method no route takes', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;
  let doc: Document;

  before(async () => {
    const stateDir = makeTempDir('fnbus-openapi-');
    provider = new ProcessProvider({ stateDir });
    await provider.start();
    gateway = buildGateway({
      provider: { ...baseProvider(provider), secrets: provider.secrets },
      config: readConfig({ basic_auth: 'true', secret_mount_path: join(stateDir, 'none') }),
      credentials,
      mounts: [
        {
          prefix: '/webhook/',
          methods: ['POST'],
          summary: 'a webhook',
          statuses: { 202: 'taken', default: 'its answer' },
          handler: (_req, res) => res.writeHead(202).end(),
        },
      ],
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
    const res = await request(`${url}/system/openapi.json`, { headers: { authorization } });
    assert.equal(res.status, 200);
    doc = JSON.parse(res.text) as Document;
  });
  after(async () => {
    await gateway.close();
    await provider.close();
  });

  it('is valid OpenAPI 3.1: no two paths with the same template', (t) => {
    assert.equal(doc.openapi, '3.1.0');
    const templates = new Map<string, string>();
    for (const path of Object.keys(doc.paths)) {
      const template = path.replace(/\{\w+\}/g, '{}');
      assert.equal(templates.get(template), undefined, `${path} and ${templates.get(template)}`);
      templates.set(template, path);
    }
    // The cancel alias is served, not documented: its template is the submit route's.
    assert.equal(doc.paths['/async-function/{callId}'], undefined);
    assert.ok(doc.paths['/async-function/{name}']?.post);
    assert.deepEqual(doc.paths['/system/calls/{callId}']?.delete?.security, [{ basicAuth: [] }]);

    const python = fuzzPython();
    if (!python) {
      t.skip('openapi-spec-validator is not installed (npm run fuzz installs it)');
      return;
    }
    const file = join(makeTempDir('fnbus-openapi-doc-'), 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const checked = spawnSync(
      python,
      ['-c', 'import sys; from openapi_spec_validator.__main__ import main; main()', file],
      { encoding: 'utf8' },
    );
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
  });

  it('declares the responses of every operation: a success, 400/413 with a body, 401 with auth', () => {
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const statuses = Object.keys(operation.responses ?? {});
        const where = `${method.toUpperCase()} ${path}: ${statuses.join(' ')}`;
        assert.ok(
          statuses.some((status) => /^2/.test(status) || status === 'default') ||
            path === '/system/namespace/{name}', // 501 and nothing else
          where,
        );
        if (path.startsWith('/system/')) assert.ok(statuses.includes('401'), where);
        else assert.ok(!statuses.includes('401') || path.startsWith('/webhook/'), where);
      }
    }
    const deploy = doc.paths['/system/functions']?.post?.responses ?? {};
    for (const status of ['202', '400', '401', '409', '413'])
      assert.ok(deploy[status], `deploy ${status}`);
    const submit = doc.paths['/async-function/{name}']?.post?.responses ?? {};
    for (const status of ['202', '400', '404', '413'])
      assert.ok(submit[status], `submit ${status}`);
  });

  it('puts the basicAuth scheme on /system/* and on no open route', () => {
    assert.deepEqual(doc.components?.securitySchemes?.basicAuth, {
      type: 'http',
      scheme: 'basic',
    });
    let secured = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        if (path.startsWith('/system/')) {
          assert.deepEqual(operation.security, [{ basicAuth: [] }], where);
          secured++;
        } else {
          assert.ok(openRoutes.test(path), `${where} is neither /system nor open by design`);
          assert.equal(operation.security, undefined, where);
        }
      }
    }
    assert.ok(secured > 20, `${secured} authenticated operations`);
  });

  it('has no security scheme when basic auth is off', async () => {
    const open = buildGateway({
      provider: baseProvider(provider),
      config: readConfig({ basic_auth: 'false' }),
    });
    const res = await open.inject({ method: 'GET', url: '/system/openapi.json' });
    const document = res.json<Document>();
    assert.equal(document.components, undefined);
    assert.equal(document.paths['/system/functions']?.get?.security, undefined);
    assert.equal(document.paths['/system/functions']?.get?.responses?.['401'], undefined);
    await open.close();
  });

  it('answers 405 with Allow to a method no route takes on a known path, 404 off the map', async () => {
    for (const [method, path, allow] of [
      ['PATCH', '/system/functions', 'DELETE, GET, HEAD, POST, PUT'],
      ['PATCH', '/system/functions?namespace=x', 'DELETE, GET, HEAD, POST, PUT'],
      ['POST', '/healthz', 'GET, HEAD'],
      ['DELETE', '/metrics', 'GET, HEAD'],
      ['PUT', '/system/info', 'GET, HEAD'],
      ['DELETE', '/system/function/echo', 'GET, HEAD'],
      ['GET', '/system/scale-function/echo', 'POST'],
      // The route of this very path, not /system/dead-letters/:callId's GET.
      ['PUT', '/system/dead-letters/redrive', 'POST'],
      // The hidden cancel alias's DELETE is not advertised; nor is a HEAD that would queue.
      ['OPTIONS', '/async-function/echo', 'GET, PATCH, POST, PUT'],
      // Without a Content-Type, fastify would refuse a QUERY with a 400 before routing it.
      ['QUERY', '/healthz', 'GET, HEAD'],
      ['QUERY', '/system/functions', 'DELETE, GET, HEAD, POST, PUT'],
      ['PATCH', '/system/calls/abc', 'DELETE, GET, HEAD'],
      ['GET', '/webhook/topic', 'POST'],
    ] as const) {
      const res = await request(`${url}${path}`, { method, headers: { authorization } });
      assert.equal(res.status, 405, `${method} ${path}: ${res.status} ${res.text}`);
      assert.equal(res.headers.allow, allow, `${method} ${path}`);
    }
    for (const path of ['/nope', '/system/nope', '/function', '/system/functions/x/y']) {
      const res = await request(`${url}${path}`, { headers: { authorization } });
      assert.equal(res.status, 404, `${path}: ${res.status} ${res.text}`);
      assert.equal(res.headers.allow, undefined, path);
    }
    // Without credentials, /system stays closed whatever the method.
    assert.equal((await request(`${url}/system/functions`, { method: 'PATCH' })).status, 401);
  });
});
