/** Where `fnbus up` listens unless told: this machine only. */
export const defaultHost = '127.0.0.1';

/** `host` without the brackets a URL writes an IPv6 address in (listen() takes none). */
export function bareHost(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}

/** A loopback address or name: reachable from this machine alone. */
export function isLoopback(host: string): boolean {
  const bare = bareHost(host).toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  if (/^::ffff:127\./.test(bare)) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/** How a client on this machine reaches a server listening on `host`. */
export function localHost(host: string): string {
  const bare = bareHost(host);
  // Every address (0.0.0.0, ::) includes the loopback one.
  if (bare === '' || bare === '0.0.0.0' || bare === '::') return '127.0.0.1';
  return bare.includes(':') ? `[${bare}]` : bare;
}
