import { Writable } from 'node:stream';
import {
  Log,
  Watch,
  type CoreV1Api,
  type KubeConfig,
  type V1Pod,
  type V1PodList,
} from '@kubernetes/client-node';
import type { LogMessage, LogRequest } from '../../core/log-types.js';
import { FaasFunctionLabel } from '../../core/function-rules.js';
import { kubeError } from './kube-errors.js';

export interface PodLogSources {
  core: CoreV1Api;
  kubeConfig: KubeConfig;
}

/** The most lines a follower that reads slowly is behind by; older ones are dropped. */
const followBacklogMax = 10_000;

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
 * following, each new line as its pod writes it, until `signal` aborts, from the pods that run
 * when the request comes and those that start later.
 */
export async function* podLogs(
  sources: PodLogSources,
  req: LogRequest & { namespace: string },
  signal: AbortSignal,
): AsyncIterable<LogMessage> {
  const { namespace, name } = req;
  const labelSelector = `${FaasFunctionLabel}=${name}`;
  const wanted = (pod: string) => !!pod && (req.instance === undefined || pod === req.instance);
  let listed: V1PodList;
  try {
    listed = await sources.core.listNamespacedPod({ namespace, labelSelector });
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
    for (const pod of listed.items.map(podName).filter(wanted)) {
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

  // Following: a stream per pod whose container runs, all feeding one queue read until the
  // signal aborts. A watch on the function's pods adds those that start later (a scale-up, a
  // rolling update), with every line they write.
  const queue: LogMessage[] = [];
  let wake: (() => void) | undefined;
  const streams: AbortController[] = [];
  const followed = new Set<string>();
  // Ends with the caller's signal, or when the caller stops reading (a `break` ends the loop
  // without aborting): what starts afterwards is closed at once.
  const ending = new AbortController();
  const ended = ending.signal;
  const onAbort = () => {
    ending.abort();
    wake?.();
  };
  signal.addEventListener('abort', onAbort);
  if (signal.aborted) ending.abort();
  const follow = async (pod: string, { fromStart }: { fromStart: boolean }) => {
    followed.add(pod);
    let rest = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          const found = message(pod, line);
          if (!found) continue;
          queue.push(found);
          // A follower that does not read is not allowed to grow without bound.
          if (queue.length > followBacklogMax) queue.shift();
        }
        wake?.();
        done();
      },
    });
    try {
      const stream = await new Log(sources.kubeConfig).log(namespace, pod, name, sink, {
        follow: true,
        timestamps: true,
        ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
        ...(fromStart || req.tail === undefined ? {} : { tailLines: req.tail }),
      });
      if (ended.aborted) stream.abort();
      else streams.push(stream);
    } catch {
      followed.delete(pod); // gone, or not started after all: the watch says when it runs
    }
  };
  const onPod = (pod: V1Pod, fromStart: boolean) => {
    const instance = podName(pod);
    if (!ended.aborted && wanted(instance) && !followed.has(instance) && containerRuns(pod, name)) {
      void follow(instance, { fromStart });
    }
  };
  let watch: AbortController | undefined;
  const startWatch = async (resourceVersion: string | undefined) => {
    try {
      watch = await new Watch(sources.kubeConfig).watch(
        `/api/v1/namespaces/${namespace}/pods`,
        { labelSelector, ...(resourceVersion ? { resourceVersion } : {}) },
        (phase, pod: V1Pod) => {
          if (phase === 'ADDED' || phase === 'MODIFIED') onPod(pod, true);
        },
        () => {
          // The API server ends watches after a while: begun again, from the current pods.
          setTimeout(again, 1000).unref();
        },
      );
      if (ended.aborted) watch.abort();
    } catch {
      setTimeout(again, 1000).unref();
    }
  };
  const again = () => {
    if (!ended.aborted) void startWatch(undefined);
  };
  try {
    for (const pod of listed.items) onPod(pod, false);
    await startWatch(listed.metadata?.resourceVersion);
    while (!ended.aborted) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (ended.aborted || queue.length > 0) resolve();
      });
      wake = undefined;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    ending.abort();
    watch?.abort();
    for (const stream of streams) stream.abort();
  }
}

function podName(pod: V1Pod): string {
  return pod.metadata?.name ?? '';
}

/** Whether the pod's function container runs now: only then has it a log to follow. */
function containerRuns(pod: V1Pod, container: string): boolean {
  return !!pod.status?.containerStatuses?.some((c) => c.name === container && c.state?.running);
}
