/**
 * IndexedDB as promises: open with an upgrade function, and one transaction over named stores that
 * resolves only when the transaction completes (so a resolved write is durable as far as the
 * browser promises: `durability: 'strict'` asks it to flush before completing).
 */
export function openIdb(name: string, version: number, upgrade: (db: IDBDatabase, oldVersion: number) => void): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, version);
    req.onupgradeneeded = (ev) => upgrade(req.result, ev.oldVersion);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error(`cannot open IndexedDB ${name}`));
    req.onblocked = () => reject(new Error(`IndexedDB ${name} is held open by another tab`));
  });
}

/** Runs `body` in one transaction; resolves with its result when the transaction has committed. */
export function inTransaction<T>(
  db: IDBDatabase,
  stores: string | string[],
  mode: IDBTransactionMode,
  body: (tx: IDBTransaction) => T | Promise<T>,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(stores, mode, { durability: 'strict' });
    let result: T;
    let failed: unknown;
    tx.oncomplete = () => (failed === undefined ? resolve(result) : reject(failed));
    tx.onerror = () => reject(tx.error ?? failed ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(failed ?? tx.error ?? new Error('IndexedDB transaction aborted'));
    Promise.resolve()
      .then(() => body(tx))
      .then(
        (r) => {
          result = r;
        },
        (e: unknown) => {
          failed = e;
          try {
            tx.abort();
          } catch {
            // already finished
          }
        },
      );
  });
}

/** One request as a promise. */
export function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}
