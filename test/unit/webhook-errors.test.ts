import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { readWebhookConfig } from '../../connectors/webhook/config.js';
import { createWebhookHandler } from '../../connectors/webhook/webhook-handler.js';
import { TopicMap } from '../../connectors/sdk/topic-map.js';
import { request } from '../helpers/http.js';

/** The webhook answers errors as the gateway does (core/errors.ts httpAnswer). */
describe('webhook: errors to HTTP', () => {
  const server = createServer(
    createWebhookHandler({
      topicMap: () =>
        TopicMap.fromFunctions([
          { name: 'orders', namespace: 'openfaas-fn', annotations: { topic: 'orders' } },
        ]),
      // An emit that fails as an unexpected bug would, naming a file of this machine.
      emit: () => () => Promise.reject(new Error("ENOENT: open '/home/ada/.fnbus/state/x'")),
      config: readWebhookConfig({}),
      secret: () => Promise.resolve(undefined),
    }),
  );
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('a plain Error is a bare 500, not its message', async () => {
    const res = await request(`${url}/webhook/orders`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.equal(res.body.toString(), 'internal error\n');
  });

  it('a refusal keeps its status and reason', async () => {
    const res = await request(`${url}/webhook/nobody`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 404);
    assert.equal(res.body.toString(), 'no function takes the topic "nobody"\n');
  });
});
