import { Writable } from 'node:stream';
import { Log, type CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { LogMessage, LogRequest } from '../../core/log-types.js';
import { FaasFunctionLabel } from '../../core/function-rules.js';
import { kubeError } from './kube-errors.js';

export interface PodLogSources {
  core: CoreV1Api;
  kubeConfig: KubeConfig;
}

/** `2026-12-04T07:00:00.123456789Z text`: a line as the kubelet stamps it. */
function parseLine(line: string): { timestamp: string; text: string } | undefined {
  const space = line.indexOf(' ');
  if (space <= 0) return undefined;
  const timestamp = line.slice(0, space);
  return Number.isNaN(Date.parse(timestamp))
    ? undefined
    : { timestamp, text: line.slice(space + 1) };
}

/**
 * A function's logs from its pods (instance = the pod's name), each line stamped by the kubelet:
 * the lines so far, merged in time order, `since` and `tail` applied over all of them; then, when
 * following, each new line as its pod writes it, until `signal` aborts. The pods are those that
 * run when the request comes.
 */
export async function* podLogs(
  sources: PodLogSources,
  req: LogRequest & { namespace: string },
  signal: AbortSignal,
): AsyncIterable<LogMessage> {
  const { namespace, name } = req;
  let pods: string[];
  try {
    const listed = await sources.core.listNamespacedPod({
      namespace,
      labelSelector: `${FaasFunctionLabel}=${name}`,
    });
    pods = listed.items
      .map((pod) => pod.metadata?.name ?? '')
      .filter((pod) => pod && (req.instance === undefined || pod === req.instance));
  } catch (error) {
    throw kubeError(`cannot list the pods of "${name}"`, error);
  }
  const since = req.since?.getTime();
  const sinceSeconds =
    since === undefined ? undefined : Math.max(1, Math.ceil((Date.now() - since) / 1000) + 1);
  const message = (instance: string, line: string): LogMessage | undefined => {
    const parsed = parseLine(line);
    if (!parsed || (since !== undefined && Date.parse(parsed.timestamp) < since)) return undefined;
    return { name, namespace, instance, timestamp: parsed.timestamp, text: parsed.text };
  };

  if (!req.follow) {
    const lines: LogMessage[] = [];
    for (const pod of pods) {
      let text: string;
      try {
        text = await sources.core.readNamespacedPodLog({
          name: pod,
          namespace,
          container: name,
          timestamps: true,
          ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
          ...(req.tail === undefined ? {} : { tailLines: req.tail }),
        });
      } catch {
        continue; // a pod still starting has no log yet
      }
      for (const line of text.split('\n')) {
        const found = message(pod, line);
        if (found) lines.push(found);
      }
    }
    lines.sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    yield* req.tail === undefined ? lines : lines.slice(Math.max(0, lines.length - req.tail));
    return;
  }

  // Following: each pod's stream feeds one queue, read until the signal aborts.
  const queue: LogMessage[] = [];
  let wake: (() => void) | undefined;
  const streams: AbortController[] = [];
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    for (const pod of pods) {
      let rest = '';
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          const lines = (rest + chunk.toString()).split('\n');
          rest = lines.pop() ?? '';
          for (const line of lines) {
            const found = message(pod, line);
            if (found) queue.push(found);
          }
          wake?.();
          done();
        },
      });
      streams.push(
        await new Log(sources.kubeConfig).log(namespace, pod, name, sink, {
          follow: true,
          timestamps: true,
          ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
          ...(req.tail === undefined ? {} : { tailLines: req.tail }),
        }),
      );
    }
    while (!signal.aborted) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (signal.aborted || queue.length > 0) resolve();
      });
      wake = undefined;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    for (const stream of streams) stream.abort();
  }
}
