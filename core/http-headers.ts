/**
 * Headers that describe one connection rather than the message, so a proxy never forwards them
 * (RFC 9110 §7.6.1); `expect` is answered by the hop that receives it.
 */
export const hopByHopHeaders: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);
