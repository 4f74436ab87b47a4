import { EnvReader, fnbusName, type Env } from '../../core/config.js';
import { signatureSchemes, type SignatureScheme } from './signatures.js';

export interface WebhookConfig {
  /** Where `fnbus connector webhook` listens (webhook_port). */
  port: number;
  /** Largest body taken (webhook_max_body_bytes); 413 beyond. */
  maxBodyBytes: number;
  /** How long a delivery id is remembered against replays (webhook_replay_window). */
  replayWindowMs: number;
  /** Verification set by config rather than annotations, per topic (webhook_verify). */
  verify: ReadonlyMap<string, { scheme: SignatureScheme; secret: string }>;
}

/**
 * `webhook_verify`: `topic=scheme:secret-name` entries separated by `;`, e.g.
 * `github-events=github:gh-webhook;payments=stripe:stripe-signing`; these topics are verified so
 * whatever their functions' annotations say.
 */
export function readWebhookConfig(env: Env): Readonly<WebhookConfig> {
  const read = new EnvReader(env);
  return read.done(readWebhookSettings(read));
}

/** `readWebhookConfig` through a reader shared with the SDK's settings. */
export function readWebhookSettings(read: EnvReader): WebhookConfig {
  const verify = new Map<string, { scheme: SignatureScheme; secret: string }>();
  const given = read.raw(...fnbusName('webhook_verify'));
  for (const entry of (given?.value ?? '').split(';')) {
    if (!entry.trim()) continue;
    const match = /^\s*([^=\s]+)\s*=\s*(\w+)\s*:\s*(\S+)\s*$/.exec(entry);
    const scheme = match?.[2] as SignatureScheme | undefined;
    if (!match || !scheme || !signatureSchemes.includes(scheme)) {
      read.problem(
        `${given?.name ?? 'webhook_verify'}: "${entry.trim()}" is not topic=scheme:secret (scheme: ${signatureSchemes.join(', ')})`,
      );
      continue;
    }
    verify.set(match[1] as string, { scheme, secret: match[3] as string });
  }
  return {
    port: read.integer(fnbusName('webhook_port'), 8090, { min: 0, max: 65535 }),
    maxBodyBytes: read.integer(fnbusName('webhook_max_body_bytes'), 1024 * 1024, { min: 1 }),
    replayWindowMs: read.durationMs(fnbusName('webhook_replay_window'), 24 * 3600_000),
    verify,
  };
}
