/**
 * The one contract every Db keeps (src/db/db.ts), in the style of hono's common.case.test.ts:
 * db.test.ts runs it against SQLite and PostgreSQL. Code above the storage may rely on exactly what
 * is proved here, and on nothing either database does beyond it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Column, type Db, type Migration, type SqlValue, StorageConstraintError } from '../src/db/db.js';
import { SchemaNewerError } from '../src/db/migrate.js';
import type { TestDatabase } from './pg-harness.js';

const MAX = Number.MAX_SAFE_INTEGER;

/** Settles a promise into its rejection reason (or undefined if it resolved). */
export function thrown(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function table(db: Db): Promise<void> {
  const d = db.dialect;
  await db.run(`CREATE TABLE t (id ${d.serialKey}, i ${d.int}, s TEXT, b ${d.bytes})`);
}

async function count(db: Db, from = 't'): Promise<number> {
  const r = await db.one<{ n: number }>(`SELECT count(*) AS n FROM ${from}`);
  return r?.n ?? -1;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Bytes without the Buffer subclass, as the interface promises. */
function plainBytes(v: SqlValue | undefined): boolean {
  return v instanceof Uint8Array && Object.getPrototypeOf(v) === Uint8Array.prototype;
}

const TEXTS = ['', 'plain', '食堂一楼 · 二号窗口 ¥12.50', '🍜🥟', 'it\'s "quoted" \\ back', '?', '$1', 'line\nbreak\ttab', 'NULL'];
const INTS = [0, 1, -1, 42, -42, 2 ** 31, -(2 ** 31) - 1, 2 ** 32 + 7, MAX, -MAX];

export function dbContract(h: TestDatabase): void {
  describe.skipIf(!h.available)(`Db contract on ${h.name}`, () => {
    describe('values', () => {
      it('round-trips safe integers (negative, ±(2^53-1)), text (Chinese, emoji, quotes), bytes (incl. empty) and null', async () => {
        const db = await h.open();
        await table(db);
        const bytes = [new Uint8Array(0), Uint8Array.from([0, 1, 0x7f, 0x80, 0xff]), new Uint8Array(1000).map((_, i) => (i * 37) & 0xff)];
        const rows: [SqlValue, SqlValue, SqlValue][] = [];
        for (let k = 0; k < Math.max(INTS.length, TEXTS.length, bytes.length); k++) {
          rows.push([INTS[k % INTS.length] ?? 0, TEXTS[k % TEXTS.length] ?? '', bytes[k % bytes.length] ?? null]);
        }
        rows.push([null, null, null]);
        for (const r of rows) await db.run('INSERT INTO t (i, s, b) VALUES (?, ?, ?)', r);
        const back = await db.all<{ i: number | null; s: string | null; b: Uint8Array | null }>('SELECT i, s, b FROM t ORDER BY id');
        expect(back.map((r) => [r.i, r.s, r.b])).toEqual(rows);
        for (const r of back) {
          if (r.i !== null) expect(typeof r.i).toBe('number');
          if (r.b !== null) expect(plainBytes(r.b)).toBe(true);
        }
        expect(back.find((r) => r.b?.length === 0)?.b).toEqual(new Uint8Array(0));
      });

      it('round-trips any safe integer, text and bytes (property)', async () => {
        const db = await h.open();
        await table(db);
        const value = fc.record({
          i: fc.option(
            fc.maxSafeInteger().map((n) => (n === 0 ? 0 : n)),
            { nil: null },
          ),
          s: fc.option(fc.string({ unit: 'grapheme', maxLength: 40 }), { nil: null }),
          b: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
        });
        await fc.assert(
          fc.asyncProperty(fc.array(value, { minLength: 1, maxLength: 10 }), async (batch) => {
            await db.run('DELETE FROM t');
            for (const v of batch) await db.run('INSERT INTO t (i, s, b) VALUES (?, ?, ?)', [v.i, v.s, v.b]);
            const back = await db.all('SELECT i, s, b FROM t ORDER BY id');
            expect(back).toEqual(batch.map((v) => ({ i: v.i, s: v.s, b: v.b })));
          }),
          { numRuns: 25 },
        );
      });

      it('refuses an unsafe or fractional integer parameter with a RangeError, writing nothing', async () => {
        const db = await h.open();
        await table(db);
        for (const bad of [2 ** 53, -(2 ** 53), 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          expect(await thrown(db.run('INSERT INTO t (i) VALUES (?)', [bad])), String(bad)).toBeInstanceOf(RangeError);
        }
        expect(await thrown(db.run('INSERT INTO t (s) VALUES (?)', ['nul \0 inside']))).toBeInstanceOf(RangeError);
        const notValues: unknown[] = [10n, true, undefined, { a: 1 }];
        for (const v of notValues)
          expect(await thrown(db.run('INSERT INTO t (i) VALUES (?)', [v] as SqlValue[]))).toBeInstanceOf(TypeError);
        expect(await count(db)).toBe(0);
      });

      it('refuses to return a stored integer beyond 2^53-1 as a number (it would be rounded); as text it reads exactly', async () => {
        const db = await h.open();
        await table(db);
        await db.run('INSERT INTO t (i) VALUES (9007199254740993)');
        expect(await thrown(db.all('SELECT i FROM t'))).toBeInstanceOf(RangeError);
        expect(await thrown(db.one('SELECT i FROM t'))).toBeInstanceOf(RangeError);
        expect(await db.one('SELECT CAST(i AS TEXT) AS v FROM t')).toEqual({ v: '9007199254740993' });
        await db.run('UPDATE t SET i = -9007199254740993');
        expect(await thrown(db.all('SELECT i FROM t'))).toBeInstanceOf(RangeError);
      });

      it('returns aggregates as numbers and comparisons as 1 or 0 on both', async () => {
        const db = await h.open();
        await table(db);
        for (const i of [1, 2, 3, 2 ** 40]) await db.run('INSERT INTO t (i) VALUES (?)', [i]);
        const r = await db.one('SELECT count(*) AS n, sum(i) AS total, max(i) AS top, min(i) AS low FROM t');
        expect(r).toEqual({ n: 4, total: 2 ** 40 + 6, top: 2 ** 40, low: 1 });
        const c = await db.all('SELECT i, CASE WHEN i > 2 THEN 1 ELSE 0 END AS big, (i = 2) AS two FROM t ORDER BY i');
        expect(c).toEqual([
          { i: 1, big: 0, two: 0 },
          { i: 2, big: 0, two: 1 },
          { i: 3, big: 1, two: 0 },
          { i: 2 ** 40, big: 1, two: 0 },
        ]);
        expect(await db.one('SELECT sum(i) AS total FROM t WHERE i < 0')).toEqual({ total: null });
      });

      it('returns rows as plain objects keyed by column name, undefined from one() when there is none', async () => {
        const db = await h.open();
        await table(db);
        expect(await db.one('SELECT i FROM t')).toBeUndefined();
        expect(await db.all('SELECT i FROM t')).toEqual([]);
        const id = await db.one<{ id: number }>('INSERT INTO t (i, s) VALUES (?, ?) RETURNING id', [7, 'x']);
        expect(id).toEqual({ id: 1 });
        expect(await db.one('SELECT i AS "Amount", s AS label FROM t WHERE id = ?', [1])).toEqual({ Amount: 7, label: 'x' });
      });
    });

    describe('placeholders', () => {
      it('binds ? in order, and leaves a ? inside a string literal, a quoted identifier or a comment alone', async () => {
        const db = await h.open();
        await table(db);
        await db.run("INSERT INTO t (i, s) VALUES (1, '?'), (2, 'it''s ?'), (3, ?)", ['three?']);
        expect(await db.all("SELECT i FROM t WHERE s = '?' AND i = ?", [1])).toEqual([{ i: 1 }]);
        expect(await db.all("SELECT i FROM t WHERE s = 'it''s ?' AND i > ?", [0])).toEqual([{ i: 2 }]);
        const sql = `SELECT i AS "how much?", s -- is this a ? no
          FROM t /* nor ? this */ WHERE i >= ? AND i <= ? ORDER BY i`;
        expect(await db.all(sql, [2, 3])).toEqual([
          { 'how much?': 2, s: "it's ?" },
          { 'how much?': 3, s: 'three?' },
        ]);
      });

      it('refuses a wrong number of parameters with a RangeError, and a second statement in one call', async () => {
        const db = await h.open();
        await table(db);
        expect(await thrown(db.all('SELECT i FROM t WHERE i = ? AND s = ?', [1]))).toBeInstanceOf(RangeError);
        expect(await thrown(db.all('SELECT i FROM t WHERE i = ?', [1, 2]))).toBeInstanceOf(RangeError);
        expect(await thrown(db.run('INSERT INTO t (i) VALUES (1); INSERT INTO t (i) VALUES (2)'))).toBeInstanceOf(Error);
        expect(await count(db)).toBe(0);
      });
    });

    describe('transactions', () => {
      it('commits what fn wrote and resolves with what fn returned', async () => {
        const db = await h.open();
        await table(db);
        const out = await db.tx(async (q) => {
          await q.run('INSERT INTO t (i) VALUES (?)', [1]);
          await q.insertMany('t', [{ name: 'i', type: 'int' }], [[2], [3]]);
          return (await q.one<{ n: number }>('SELECT count(*) AS n FROM t'))?.n;
        });
        expect(out).toBe(3);
        expect(await count(db)).toBe(3);
      });

      it('rolls back everything when fn throws, and rethrows the same error', async () => {
        const db = await h.open();
        await table(db);
        const boom = new Error('boom');
        const e = await thrown(
          db.tx(async (q) => {
            await q.run('INSERT INTO t (i) VALUES (?)', [1]);
            await q.insertMany('t', [{ name: 'i', type: 'int' }], [[2], [3]]);
            throw boom;
          }),
        );
        expect(e).toBe(boom);
        expect(await count(db)).toBe(0);
      });

      it('fails the whole transaction on a failed statement even if fn catches it', async () => {
        const db = await h.open();
        await db.run(`CREATE TABLE k (id ${db.dialect.int} PRIMARY KEY)`);
        await db.run('INSERT INTO k (id) VALUES (1)');
        const e = await thrown(
          db.tx(async (q) => {
            await q.run('INSERT INTO k (id) VALUES (?)', [2]);
            await q.run('INSERT INTO k (id) VALUES (?)', [1]).catch(() => undefined);
            return 'fn thinks all is well';
          }),
        );
        expect(e).toBeInstanceOf(StorageConstraintError);
        expect(await db.all('SELECT id FROM k')).toEqual([{ id: 1 }]);
        // After such a failure every further statement of that transaction is refused too.
        const later = await thrown(
          db.tx(async (q) => {
            await q.run('INSERT INTO k (id) VALUES (1)').catch(() => undefined);
            await q.run('INSERT INTO k (id) VALUES (3)');
          }),
        );
        expect(String(later)).toMatch(/an earlier statement of this transaction failed/);
        expect(await db.all('SELECT id FROM k')).toEqual([{ id: 1 }]);
      });

      it('refuses the Db itself inside its own tx (instead of deadlocking or escaping the tx), and the Queryable after it', async () => {
        const db = await h.open();
        await table(db);
        let escaped: { run(sql: string): Promise<number> } | undefined;
        const e = await thrown(
          db.tx(async (q) => {
            escaped = q;
            await db.run('INSERT INTO t (i) VALUES (1)');
          }),
        );
        expect(String(e)).toMatch(/use the Queryable passed to tx/);
        expect(String(await thrown(db.tx(async () => db.tx(async () => 1))))).toMatch(/use the Queryable passed to tx/);
        expect(String(await thrown(escaped?.run('INSERT INTO t (i) VALUES (2)') ?? Promise.resolve()))).toMatch(/already ended/);
        expect(await count(db)).toBe(0);
      });

      it('never shows another caller half a transaction', async () => {
        const db = await h.open();
        await table(db);
        const gate = deferred();
        const writer = db.tx(async (q) => {
          await q.run('INSERT INTO t (i) VALUES (1)');
          await gate.promise;
          await q.run('INSERT INTO t (i) VALUES (2)');
        });
        await new Promise((r) => setTimeout(r, 20));
        // The writer's rows only: the concurrent insert of 3 may land before or after the count.
        const reader = db.one<{ n: number }>('SELECT count(*) AS n FROM t WHERE i < 3').then((r) => r?.n);
        const other = db.run('INSERT INTO t (i) VALUES (3)');
        setTimeout(gate.resolve, 20);
        await writer;
        await other;
        expect([0, 2]).toContain(await reader);
        expect(await count(db)).toBe(3);
      });

      it('two transactions incrementing one counter 50 times each, concurrently, add exactly 100', async () => {
        const db = await h.open();
        await db.run(`CREATE TABLE counter (id ${db.dialect.int} PRIMARY KEY, n ${db.dialect.int} NOT NULL)`);
        await db.run('INSERT INTO counter (id, n) VALUES (1, 0)');
        let runs = 0;
        const worker = async () => {
          for (let k = 0; k < 50; k++) {
            await db.tx(async (q) => {
              runs++;
              const r = await q.one<{ n: number }>('SELECT n FROM counter WHERE id = 1');
              // Yield between the read and the write, so the two workers really interleave.
              await new Promise((resolve) => setImmediate(resolve));
              await q.run('UPDATE counter SET n = ? WHERE id = 1', [(r?.n ?? 0) + 1]);
            });
          }
        };
        await Promise.all([worker(), worker()]);
        expect(await db.one('SELECT n FROM counter WHERE id = 1')).toEqual({ n: 100 });
        // SQLite serialises (exactly 100 runs); PostgreSQL retried the ones that conflicted.
        expect(runs).toBeGreaterThanOrEqual(100);
      });
    });

    describe('constraints', () => {
      it('reports unique, not-null, foreign-key and check violations as StorageConstraintError of that kind', async () => {
        const db = await h.open();
        const d = db.dialect;
        await db.run(`CREATE TABLE parent (id ${d.int} PRIMARY KEY, code TEXT UNIQUE)`);
        await db.run(
          `CREATE TABLE child (id ${d.int} PRIMARY KEY, parent_id ${d.int} NOT NULL REFERENCES parent (id), n ${d.int} CHECK (n >= 0))`,
        );
        await db.run("INSERT INTO parent (id, code) VALUES (1, 'a')");
        const kind = async (p: Promise<unknown>) => {
          const e = await thrown(p);
          expect(e).toBeInstanceOf(StorageConstraintError);
          return (e as StorageConstraintError).kind;
        };
        expect(await kind(db.run("INSERT INTO parent (id, code) VALUES (1, 'b')"))).toBe('unique');
        expect(await kind(db.run("INSERT INTO parent (id, code) VALUES (2, 'a')"))).toBe('unique');
        expect(await kind(db.run('INSERT INTO child (id, parent_id, n) VALUES (1, NULL, 0)'))).toBe('not_null');
        expect(await kind(db.run('INSERT INTO child (id, parent_id, n) VALUES (1, 99, 0)'))).toBe('foreign_key');
        expect(await kind(db.run('INSERT INTO child (id, parent_id, n) VALUES (1, 1, -1)'))).toBe('check');
        expect(await kind(db.insertMany('parent', [{ name: 'id', type: 'int' }], [[3], [1]]))).toBe('unique');
        expect(await count(db, 'parent')).toBe(1);
      });
    });

    describe('insertMany', () => {
      const columns: Column[] = [
        { name: 'i', type: 'int' },
        { name: 's', type: 'text' },
        { name: 'b', type: 'bytes' },
      ];
      const row = (k: number): SqlValue[] => [
        k % 7 === 0 ? null : k * 1_000_003 - 5_000_000,
        k % 11 === 0 ? null : `行 ${k} "q" 'a' \\ ,{}`,
        k % 13 === 0 ? null : Uint8Array.from([k & 0xff, (k >> 8) & 0xff, 0]),
      ];

      it('inserts 20,000 rows of int, text, bytes and null in one call', async () => {
        const db = await h.open();
        await table(db);
        const rows = Array.from({ length: 20_000 }, (_, k) => row(k));
        expect(await db.insertMany('t', columns, rows)).toBe(20_000);
        expect(await count(db)).toBe(20_000);
        const expected = rows.reduce((sum, r) => sum + (typeof r[0] === 'number' ? r[0] : 0), 0);
        expect(await db.one('SELECT sum(i) AS total FROM t')).toEqual({ total: expected });
        const back = await db.all('SELECT i, s, b FROM t ORDER BY id');
        expect(back.map((r) => [r.i, r.s, r.b])).toEqual(rows);
        expect(plainBytes(back[1]?.b)).toBe(true);
        expect(await db.insertMany('t', columns, [])).toBe(0);
      });

      it('is all or none across its internal chunks (60,001 rows, a duplicate last)', async () => {
        const db = await h.open();
        const d = db.dialect;
        await db.run(`CREATE TABLE k (id ${d.int} PRIMARY KEY)`);
        const rows = Array.from({ length: 60_001 }, (_, k) => [k === 60_000 ? 0 : k]);
        const e = await thrown(db.insertMany('k', [{ name: 'id', type: 'int' }], rows));
        expect(e).toBeInstanceOf(StorageConstraintError);
        expect(await count(db, 'k')).toBe(0);
        expect(await db.insertMany('k', [{ name: 'id', type: 'int' }], rows, { onConflict: 'ignore' })).toBe(60_000);
      });

      it('skips duplicates with onConflict ignore and counts only what it inserted', async () => {
        const db = await h.open();
        const d = db.dialect;
        await db.run(`CREATE TABLE k (id ${d.int} PRIMARY KEY, note TEXT)`);
        const cols: Column[] = [
          { name: 'id', type: 'int' },
          { name: 'note', type: 'text' },
        ];
        await db.insertMany('k', cols, [
          [1, 'first'],
          [2, 'first'],
        ]);
        const n = await db.insertMany(
          'k',
          cols,
          [1, 2, 3, 4].map((id) => [id, 'second']),
          { onConflict: 'ignore' },
        );
        expect(n).toBe(2);
        expect(await db.all('SELECT id, note FROM k ORDER BY id')).toEqual([
          { id: 1, note: 'first' },
          { id: 2, note: 'first' },
          { id: 3, note: 'second' },
          { id: 4, note: 'second' },
        ]);
      });

      it('refuses bad names, ragged rows and mistyped values before writing anything', async () => {
        const db = await h.open();
        await table(db);
        const one = [{ name: 'i', type: 'int' }] as const;
        expect(await thrown(db.insertMany('t; DROP TABLE t', one, [[1]]))).toBeInstanceOf(TypeError);
        expect(await thrown(db.insertMany('t', [{ name: 'i"', type: 'int' }], [[1]]))).toBeInstanceOf(TypeError);
        expect(await thrown(db.insertMany('t', [], [[1]]))).toBeInstanceOf(TypeError);
        expect(await thrown(db.insertMany('t', one, [[1], [1, 2]]))).toBeInstanceOf(TypeError);
        expect(await thrown(db.insertMany('t', one, [[1], ['one']]))).toBeInstanceOf(TypeError);
        expect(await thrown(db.insertMany('t', one, [[1], [2 ** 53]]))).toBeInstanceOf(RangeError);
        expect(await thrown(db.insertMany('t', [{ name: 'b', type: 'bytes' }], [['not bytes']]))).toBeInstanceOf(TypeError);
        expect(await count(db)).toBe(0);
      });
    });

    describe('migrations', () => {
      const m = (id: string, ...statements: string[]): Migration => ({ id, sql: () => statements });
      const m1: Migration = { id: 't/001-notes', sql: (d) => [`CREATE TABLE notes (id ${d.serialKey}, body TEXT NOT NULL)`] };
      const m2 = m('t/002-seed', "INSERT INTO notes (body) VALUES ('seeded once')");
      const m3: Migration = {
        id: 't/003-tags',
        sql: (d) => [`CREATE TABLE tags (note_id ${d.int} NOT NULL REFERENCES notes (id), tag TEXT NOT NULL)`],
      };

      it('applies pending migrations once, in order, and nothing on a second run', async () => {
        const db = await h.open();
        expect(await db.migrate([m1, m2])).toEqual(['t/001-notes', 't/002-seed']);
        expect(await db.migrate([m1, m2])).toEqual([]);
        expect(await db.migrate([m1, m2, m3])).toEqual(['t/003-tags']);
        expect(await db.all('SELECT body FROM notes')).toEqual([{ body: 'seeded once' }]);
        const applied = await db.all<{ id: string; applied_at: number }>('SELECT id, applied_at FROM schema_migrations ORDER BY id');
        expect(applied.map((r) => r.id)).toEqual(['t/001-notes', 't/002-seed', 't/003-tags']);
        for (const r of applied) expect(r.applied_at).toBeGreaterThan(1_600_000_000_000);
      });

      it('refuses a database that holds a migration this build does not know, applying nothing', async () => {
        const db = await h.open();
        await db.migrate([m1, m2]);
        const e = await thrown(db.migrate([m1, m3]));
        expect(e).toBeInstanceOf(SchemaNewerError);
        expect((e as SchemaNewerError).unknownIds).toEqual(['t/002-seed']);
        expect((e as SchemaNewerError).message).toMatch(/newer than this build.*t\/002-seed/);
        expect((e as SchemaNewerError).zh).toMatch(/数据库结构比本程序新/);
        expect(await db.all("SELECT id FROM schema_migrations WHERE id = 't/003-tags'")).toEqual([]);
      });

      it('rolls back a failing migration whole, keeps the ones before it, and applies it once fixed', async () => {
        const db = await h.open();
        const bad = m('t/002-bad', `CREATE TABLE half (id ${db.dialect.int})`, 'THIS IS NOT SQL');
        const e = await thrown(db.migrate([m1, bad]));
        expect(String(e)).toMatch(/t\/002-bad, statement 2/);
        expect(await db.all('SELECT id FROM schema_migrations')).toEqual([{ id: 't/001-notes' }]);
        expect(await thrown(db.all('SELECT id FROM half'))).toBeInstanceOf(Error);
        const fixed = m('t/002-bad', `CREATE TABLE half (id ${db.dialect.int})`);
        expect(await db.migrate([m1, fixed])).toEqual(['t/002-bad']);
      });

      it('applies each migration exactly once when several processes migrate at the same moment', async () => {
        const storage = await h.fresh();
        const [a, b, c] = await Promise.all([storage.open(), storage.open(), storage.open()]);
        if (a === undefined || b === undefined || c === undefined) throw new Error('three Dbs expected');
        const list = [m1, m2, m('t/003-more', "INSERT INTO notes (body) VALUES ('also once')"), m3];
        const results = await Promise.all([a.migrate(list), b.migrate(list), c.migrate(list), a.migrate(list)]);
        expect(results.flat().sort()).toEqual(list.map((x) => x.id).sort());
        expect(await a.all('SELECT body FROM notes ORDER BY id')).toEqual([{ body: 'seeded once' }, { body: 'also once' }]);
        expect(await count(a, 'schema_migrations')).toBe(4);
      });

      it('refuses a migration list with a duplicate or empty id before touching the database', async () => {
        const db = await h.open();
        expect(await thrown(db.migrate([m1, m1]))).toBeInstanceOf(RangeError);
        expect(await thrown(db.migrate([m('')]))).toBeInstanceOf(RangeError);
        expect(await thrown(db.all('SELECT id FROM notes'))).toBeInstanceOf(Error);
      });
    });

    it('rejects every call once closed', async () => {
      const db = await h.open();
      await db.close();
      await db.close();
      expect(String(await thrown(db.all('SELECT 1 AS x')))).toMatch(/closed/);
      expect(String(await thrown(db.tx(async (q) => q.run('SELECT 1'))))).toMatch(/closed/);
    });
  });
}
