import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvReader, type Env } from '../core/config.js';
import { ConfigError, ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import type { ProviderLimits } from './process/limits.js';
import type { LocalImageStore } from './process/local-image-store.js';
import type { ProcessProvider } from './process/process-provider.js';

export interface ProviderParts {
  /** The process provider's state folder (deployments, secrets, replicas' files). */
  stateDir: string;
  /** The namespace functions go to when none is named (`function_namespace`). */
  namespace: string;
  /** The hub's environment: the process provider's caps, the remote provider's credentials. */
  env: Env;
  logger: Logger;
  /** The process provider's caps, when read already (readHubConfig); default: from `env`. */
  limits?: ProviderLimits;
  /** Where the process provider finds images `fnbus build` made (deploy/process/local-image-store.ts). */
  images?: LocalImageStore;
}

export interface OpenedProvider {
  provider: Provider;
  /** The process provider itself, when that is the one: its replicas serve in this process. */
  process?: ProcessProvider;
  /** Stops what it started (replicas, connections). */
  close(): Promise<void>;
}

/** The schemes of providers that are planned but not built yet. */
const comingSchemes = ['swarm:'];

/**
 * The provider a URL names, as openQueue does for queues: `process` or nothing (the embedded
 * process provider, replicas in this process, state in `stateDir`), or `http://` / `https://`
 * (any server of OpenFaaS's faas-provider API: faas-netes, faasd, another fnbus gateway). Each is
 * loaded only when asked for. Credentials for a remote provider come from the URL's user info,
 * else `FNBUS_PROVIDER_USERNAME` / `FNBUS_PROVIDER_PASSWORD`, else the files `basic-auth-user`
 * and `basic-auth-password` in `FNBUS_PROVIDER_SECRET_MOUNT_PATH` (OpenFaaS's names); no error
 * or log shows them.
 */
export async function openProvider(
  url: string | undefined,
  parts: ProviderParts,
): Promise<OpenedProvider> {
  if (providerKind(url) === 'process') {
    const { ProcessProvider } = await import('./process/process-provider.js');
    const { readProviderLimits } = await import('./process/limits.js');
    const provider = new ProcessProvider({
      stateDir: parts.stateDir,
      namespace: parts.namespace,
      logger: parts.logger,
      ...(parts.limits ?? readProviderLimits(parts.env)),
      ...(parts.images ? { images: parts.images } : {}),
    });
    await provider.start();
    return { provider, process: provider, close: () => provider.close() };
  }
  if (providerKind(url) === 'kubernetes') {
    const { openKubernetesProvider } = await import('./kubernetes/open-kubernetes.js');
    const provider = openKubernetesProvider(url === 'kubernetes' ? 'kubernetes://' : url!, parts);
    return { provider, close: () => provider.close() };
  }
  const { FaasProvider } = await import('./faas-provider/faas-provider.js');
  const provider = new FaasProvider({
    url: url as string,
    credentials: providerCredentials(parts.env),
    timeoutMs: timeoutMs(parts.env),
    logger: parts.logger.child({ component: 'provider' }),
  });
  return { provider, close: () => provider.close() };
}

/**
 * Which provider a URL names, or a ValidationError saying what is wrong with it (never its
 * credentials): for a start to refuse a bad URL before it does anything else.
 */
export function providerKind(url: string | undefined): 'process' | 'http' | 'kubernetes' {
  if (url === undefined || url === '' || url === 'process') return 'process';
  if (url === 'kubernetes') return 'kubernetes'; // kubernetes:// with no options
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (!parsed) {
    throw new ValidationError(
      `provider "${redacted(url, parsed)}" is not a URL: use process (the default) or http://host:port`,
    );
  }
  const scheme = parsed.protocol;
  if (scheme === 'http:' || scheme === 'https:') return 'http';
  if (scheme === 'kubernetes:') {
    if (parsed.host || (parsed.pathname !== '' && parsed.pathname !== '/')) {
      throw new ValidationError(
        "provider kubernetes:// takes no host or path: the cluster comes from the kubeconfig (KUBECONFIG) or the pod's service account; options: ?context=NAME&namespace=NS",
      );
    }
    return 'kubernetes';
  }
  if (comingSchemes.includes(scheme)) {
    throw new ValidationError(
      `provider ${scheme}// is not available yet: use process (the default), kubernetes:// or http://host:port (an OpenFaaS provider)`,
    );
  }
  throw new ValidationError(
    `provider "${redacted(url, parsed)}": use process (the default), kubernetes:// (a cluster, from the kubeconfig or in-cluster credentials), http:// or https:// (an OpenFaaS faas-provider: faas-netes, faasd, another fnbus gateway); swarm:// is not available yet`,
  );
}

/** The URL as it may be shown: without user info. */
function redacted(url: string, parsed: URL | undefined): string {
  if (!parsed) return url.includes('@') ? '(unreadable URL)' : url;
  if (!parsed.username && !parsed.password) return url;
  const copy = new URL(parsed.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/** The provider's credentials from env or OpenFaaS's secret files; undefined for none. */
function providerCredentials(env: Env): { user: string; password: string } | undefined {
  const user = env.FNBUS_PROVIDER_USERNAME;
  const password = env.FNBUS_PROVIDER_PASSWORD;
  if (user !== undefined || password !== undefined) {
    return { user: user || 'admin', password: password ?? '' };
  }
  const dir = env.FNBUS_PROVIDER_SECRET_MOUNT_PATH;
  if (!dir) return undefined;
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8').trim();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ConfigError([
        `FNBUS_PROVIDER_SECRET_MOUNT_PATH: cannot read ${file} (${typeof code === 'string' ? code : 'unreadable'})`,
      ]);
    }
  };
  return { user: read('basic-auth-user'), password: read('basic-auth-password') };
}

/** `FNBUS_PROVIDER_TIMEOUT`: how long one call to a remote provider may take (default 10s). */
function timeoutMs(env: Env): number {
  const read = new EnvReader(env);
  return read.done({ ms: read.durationMs('FNBUS_PROVIDER_TIMEOUT', 10_000) }).ms;
}
