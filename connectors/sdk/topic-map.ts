import type { FunctionStatus } from '../../core/function-types.js';
import { topicsOf } from '../../core/function-rules.js';
import { exactTopics, type TopicMatcher } from './topic-matchers.js';

/** A function a topic reaches: its name as the gateway routes it, and its annotations. */
export interface TopicTarget {
  /** `name`, or `name.namespace` when the gateway lists namespaces. */
  function: string;
  annotations: Readonly<Record<string, string>>;
}

/** A listed function with the namespace it was listed under ("" for none). */
export type ListedFunction = Pick<FunctionStatus, 'name' | 'annotations'> & { namespace: string };

/**
 * Which functions each topic reaches, from their `topic` annotations (split on the delimiter,
 * trimmed, empties skipped, as OpenFaaS's connector-sdk does). Immutable: a rebuild makes a new
 * map, so a delivery in flight keeps the one it started with.
 */
export class TopicMap {
  /** Pattern → the functions naming it, in listing order. */
  readonly #byPattern: ReadonlyMap<string, readonly TopicTarget[]>;
  readonly #matcher: TopicMatcher;

  constructor(byPattern: ReadonlyMap<string, readonly TopicTarget[]>, matcher = exactTopics) {
    this.#byPattern = byPattern;
    this.#matcher = matcher;
  }

  static fromFunctions(
    functions: readonly ListedFunction[],
    { delimiter = ',', matcher = exactTopics }: { delimiter?: string; matcher?: TopicMatcher } = {},
  ): TopicMap {
    const byPattern = new Map<string, TopicTarget[]>();
    for (const fn of functions) {
      const annotations = fn.annotations ?? {};
      const patterns = topicsOf(fn, delimiter);
      if (patterns.length === 0) continue;
      const target = {
        function: fn.namespace ? `${fn.name}.${fn.namespace}` : fn.name,
        annotations,
      };
      for (const pattern of patterns) {
        const targets = byPattern.get(pattern) ?? [];
        targets.push(target);
        byPattern.set(pattern, targets);
      }
    }
    return new TopicMap(byPattern, matcher);
  }

  /** The functions `topic` reaches, each once, whichever of its patterns matched. */
  match(topic: string): TopicTarget[] {
    // Exact matching is a lookup: a pattern lists each function once.
    if (this.#matcher === exactTopics) return [...(this.#byPattern.get(topic) ?? [])];
    const found = new Map<string, TopicTarget>();
    for (const [pattern, targets] of this.#byPattern) {
      if (!this.#matcher(pattern, topic)) continue;
      for (const target of targets) {
        if (!found.has(target.function)) found.set(target.function, target);
      }
    }
    return [...found.values()];
  }

  /** Every pattern named by some function, with the functions naming it. */
  entries(): [string, readonly TopicTarget[]][] {
    return [...this.#byPattern.entries()].sort(([a], [b]) => a.localeCompare(b));
  }

  /** The patterns, sorted: what a source subscribes to. */
  topics(): string[] {
    return [...this.#byPattern.keys()].sort();
  }
}
