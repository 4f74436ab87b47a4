import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { UnavailableError } from '../../core/errors.js';
import { apiClient } from '../../deploy/kubernetes/api-clients.js';
import { kubeError } from '../../deploy/kubernetes/kube-errors.js';

describe('calls to the Kubernetes API', () => {
  const held: Socket[] = [];
  // An API server that takes connections and never answers.
  const silent = createServer((socket) => held.push(socket));
  after(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });

  it('end at their deadline when the API server takes the call and never answers', async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    assert.ok(address && typeof address === 'object');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [
        { name: 'silent', server: `http://127.0.0.1:${address.port}`, skipTLSVerify: true },
      ],
      users: [{ name: 'nobody' }],
      contexts: [{ name: 'silent', cluster: 'silent', user: 'nobody' }],
      currentContext: 'silent',
    });
    const core = apiClient(kubeConfig, CoreV1Api, 300);
    const started = Date.now();
    const failure: unknown = await core.listNamespace().then(
      () => assert.fail('answered'),
      (error: unknown) => error,
    );
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 5000, `took ${took} ms`);
    assert.ok(held.length >= 1, 'the call reached the server');
    const error = kubeError('cannot list namespaces', failure);
    assert.ok(error instanceof UnavailableError);
    assert.equal(
      error.message,
      'cannot list namespaces: the Kubernetes API did not answer in time',
    );
  });
});
