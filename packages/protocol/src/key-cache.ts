/** A small bounded map for imported public keys: importing costs more than verifying with a cached key. */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): void {
    if (this.map.size >= this.capacity && !this.map.has(key)) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    this.map.set(key, value);
  }
}

/** Public keys cached per provider: enough for every issuer, terminal and active device on a campus. */
export const PUBLIC_KEY_CACHE_ENTRIES = 50_000;
