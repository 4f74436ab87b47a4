import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../core/errors.js';
import {
  deploymentOf,
  nodeSelectorOf,
  serviceOf,
  statusOf,
} from '../../deploy/kubernetes/function-objects.js';

const options = { namespace: 'openfaas-fn', replicas: 2, pullPolicy: 'Always' as const };

describe('Kubernetes objects of a function', () => {
  it('makes the Deployment faas-netes makes, and reads it back as the deployment given', () => {
    const spec = {
      service: 'resize',
      image: 'registry.example.com/resize:1',
      envProcess: 'python3 index.py',
      envVars: { ZED: '1', ALPHA: '2' },
      labels: { team: 'media' },
      annotations: { topic: 'images' },
      secrets: ['s3-key'],
      constraints: ['node.kubernetes.io/instance-type==m5.large'],
      limits: { memory: '128Mi', cpu: '500m' },
      requests: { memory: '64Mi' },
      readOnlyRootFilesystem: true,
    };
    const deployment = deploymentOf(spec, options);
    const pod = deployment.spec!.template.spec!;
    const container = pod.containers[0]!;
    assert.deepEqual(deployment.spec!.selector.matchLabels, { faas_function: 'resize' });
    assert.deepEqual(deployment.spec!.strategy!.rollingUpdate, { maxUnavailable: 0, maxSurge: 1 });
    assert.equal(deployment.spec!.replicas, 2);
    assert.deepEqual(
      container.env!.map((e) => e.name),
      ['ALPHA', 'ZED', 'fprocess'],
    );
    assert.equal(container.readinessProbe!.httpGet!.path, '/_/health');
    assert.equal(container.ports![0]!.containerPort, 8080);
    assert.equal(container.imagePullPolicy, 'Always');
    assert.deepEqual(pod.nodeSelector, { 'node.kubernetes.io/instance-type': 'm5.large' });
    assert.deepEqual(container.volumeMounts!.map((m) => m.mountPath).sort(), [
      '/tmp',
      '/var/openfaas/secrets',
    ]);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(deployment.spec!.template.metadata!.annotations!['prometheus.io.scrape'], 'false');

    deployment.metadata!.creationTimestamp = new Date('2026-12-04T08:00:00Z');
    const status = statusOf(deployment);
    assert.equal(status.envProcess, 'python3 index.py');
    assert.deepEqual(status.envVars, { ALPHA: '2', ZED: '1' });
    assert.deepEqual(status.secrets, ['s3-key']);
    assert.deepEqual(status.constraints, ['node.kubernetes.io/instance-type==m5.large']);
    assert.deepEqual(status.limits, { memory: '128Mi', cpu: '500m' });
    assert.equal(status.readOnlyRootFilesystem, true);
    assert.equal(status.createdAt, '2026-12-04T08:00:00.000Z');
    assert.equal(status.availableReplicas, 0);

    const service = serviceOf(spec, 'openfaas-fn');
    assert.deepEqual(service.spec!.selector, { faas_function: 'resize' });
    assert.equal(service.spec!.ports![0]!.port, 8080);
  });

  it('refuses constraints and quantities it cannot express, naming them', () => {
    assert.deepEqual(nodeSelectorOf(['disk=ssd', ' zone == a ']), { disk: 'ssd', zone: 'a' });
    assert.throws(() => nodeSelectorOf(['disk!=ssd']), ValidationError);
    assert.throws(
      () => deploymentOf({ service: 'x', image: 'x', limits: { memory: 'lots' } }, options),
      /limits\.memory: "lots" is not a quantity/,
    );
  });
});
