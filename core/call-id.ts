import { randomFillSync } from 'node:crypto';

/** Random bytes drawn 128 ids at a time: one system call for many, as randomUUID does. */
const pool = Buffer.alloc(16 * 128);
let used = pool.length;
const hex = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * A new id for a queued call: a UUID of version 7 (RFC 9562), its first 48 bits the time in ms,
 * the rest random. Ids made later sort later, so the embedded queue's index of ids grows at its
 * end instead of at a random page each call (fewer pages written a commit); to a client it is a
 * UUID like any other, as opaque as OpenFaaS's. Made here rather than with the `uuid` package:
 * its v7 costs ~2 µs a call against ~0.5 here, and cost the sync gateway 10% of its rate.
 */
export function newCallId(now = Date.now()): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const at = used;
  used += 16;
  const byte = (i: number) => hex[pool[at + i] as number] as string;
  const time = now.toString(16).padStart(12, '0');
  const version = hex[0x70 | ((pool[at + 6] as number) & 0x0f)] as string;
  const variant = hex[0x80 | ((pool[at + 8] as number) & 0x3f)] as string;
  return (
    `${time.slice(0, 8)}-${time.slice(8)}-${version}${byte(7)}-${variant}${byte(9)}-` +
    `${byte(10)}${byte(11)}${byte(12)}${byte(13)}${byte(14)}${byte(15)}`
  );
}
