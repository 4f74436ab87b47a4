/**
 * What is wrong with an MQTT subscription filter (MQTT 5 §4.7, §4.8.2), or undefined when it is
 * one: `+` and `#` take a whole level, `#` only the last; `$share/<group>/<filter>` names a group
 * without wildcards and a filter after it. A broker refuses the others, so they are refused first.
 */
export function filterProblem(filter: string): string | undefined {
  if (filter === '') return 'is empty';
  if (filter.includes('\u0000')) return 'holds a NUL character';
  if (Buffer.byteLength(filter) > 65_535) return 'is longer than 65535 bytes';
  const shared = /^\$share\/([^/]*)(?:\/(.*))?$/s.exec(filter);
  if (shared) {
    const [, group = '', rest] = shared;
    if (group === '' || /[+#]/.test(group)) return 'names no share group, or one with + or #';
    if (rest === undefined || rest === '') return 'names no filter after its share group';
    return filterProblem(rest);
  }
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level === '#' && i !== levels.length - 1) return 'has # before its last level';
    if (level !== '#' && level !== '+' && /[+#]/.test(level)) {
      return 'has + or # inside a level (a wildcard takes a whole level)';
    }
  }
  return undefined;
}

/**
 * A subscription identifier (MQTT 5, 1 to 268435455) derived from the filter, so that it is the
 * same after a restart: messages kept by a persistent session carry the identifier they were
 * matched under, and must still name the same filter when they arrive at the next run.
 */
export function subscriptionIdentifier(filter: string): number {
  // FNV-1a, 32 bits.
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(filter)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash % 268_435_455) + 1;
}
