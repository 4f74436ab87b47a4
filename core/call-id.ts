import { v7 } from 'uuid';

/**
 * A new call id: a UUID of version 7 (RFC 9562), its first 48 bits the time in ms. Ids made later
 * sort later, so the embedded queue's index of ids grows at its end instead of at a random page
 * each call (fewer pages written a commit, fewer read as it grows); to a client it is a UUID like
 * any other, as opaque as OpenFaaS's.
 */
export function newCallId(): string {
  return v7();
}
