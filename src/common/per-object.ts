/**
 * State attached to an object and made on first use: the machine's indicator
 * (src/backend/indicator.ts), its event hub (src/events/hub.ts), a Redfish service's task store
 * (src/redfish/core/tasks.ts), and so on. Each of those used to write the same WeakMap get → make →
 * set → return by hand; this is that pattern once.
 *
 * A WeakMap, so the state goes away with the object it belongs to (a test's simulator, a stopped
 * agent's deps) without anyone having to remove it.
 */
export interface PerObject<K extends object, V> {
  /** The value of `key`, made by `make(key)` and kept the first time it is asked for. */
  get(key: K): V;
  /** The value of `key` if one was made or set already; never makes one (callers that must not create). */
  peek(key: K): V | undefined;
  /** Attach `value` to `key`, replacing any there (a caller that builds the value itself, e.g. attachEventHub). */
  set(key: K, value: V): void;
}

export function perObject<K extends object, V>(make: (key: K) => V): PerObject<K, V> {
  const values = new WeakMap<K, V>();
  return {
    get(key) {
      // has() rather than `=== undefined`, so a V that may be undefined is still made only once
      if (values.has(key)) return values.get(key) as V;
      const value = make(key);
      values.set(key, value);
      return value;
    },
    peek: (key) => values.get(key),
    set(key, value) {
      values.set(key, value);
    },
  };
}
