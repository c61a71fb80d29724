/**
 * The demo campus (campus.ts), on SQLite and PostgreSQL: what it makes, that the same seed makes the
 * same campus, that holders in arrears are deny-listed through the real recovery path, and that the
 * books it leaves balance and pass the full audit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLedgerFull } from '../src/audit.js';
import { type Campus, CAMPUS_FIRST_HOLDER_ID, CAMPUS_PLACES, seedCampus } from '../src/campus.js';
import { ApiError } from '../src/errors.js';
import { purses } from '../src/purses.js';
import { HttpPlatform, ok } from './http-harness.js';
import { databases } from './pg-harness.js';

const OPTIONS = { holders: 60, seed: 7, withPasswords: 2, password: 'demo-password-1', campus: 1 } as const;

for (const d of databases) {
  describe(`demo campus (${d.name})`, () => {
    let h: HttpPlatform | undefined;
    let campus: Campus | undefined;
    const p = (): HttpPlatform => {
      if (h === undefined) throw new Error('no platform');
      return h;
    };
    beforeAll(async () => {
      h = await HttpPlatform.on(d, { clearing: false });
      const { db, keys, ctx } = h.platform;
      campus = await seedCampus({ db, crypto: h.crypto, keys, auth: ctx.auth }, OPTIONS, h.clock.nowS());
    });
    afterAll(async () => {
      await h?.close();
    });

    it('makes the places, their terminals with activation codes, the holders and a sign-in for each role', async () => {
      const c = campus;
      if (c === undefined) throw new Error('no campus');
      expect(c.merchants.map((m) => m.scene)).toEqual(CAMPUS_PLACES.map((x) => x.scene));
      expect(c.terminals).toHaveLength(CAMPUS_PLACES.reduce((n, x) => n + x.terminals, 0));
      expect(new Set(c.terminals.map((t) => t.activationCode)).size).toBe(c.terminals.length);
      expect(c.holders.map((x) => x.id)).toEqual(Array.from({ length: OPTIONS.holders }, (_, i) => CAMPUS_FIRST_HOLDER_ID + i));
      for (const x of c.holders.slice(0, 5)) {
        const money = await purses(p().db, x.id);
        expect([money.cash, money.subsidy, money.creditLimit, money.arrears], String(x.id)).toEqual([
          x.cashFen,
          x.subsidyFen,
          x.creditLineFen,
          x.arrearsFen,
        ]);
      }
      // The sign-ins work through the real API.
      const first = c.holders[0];
      if (first === undefined) throw new Error('no holder');
      ok(await p().post('/v1/holder/login', { holderId: first.id, password: OPTIONS.password }));
      for (const s of c.staff) ok(await p().post('/v1/staff/login', { username: s.username, password: OPTIONS.password }));
      // A terminal activates with its code.
      const t = c.terminals[0];
      if (t === undefined) throw new Error('no terminal');
      ok(await p().activation(t.activationCode, await p().crypto.suite('p256').generate()));
    });

    it('deny-lists the holders in arrears and leaves books that balance and pass the full audit', async () => {
      const c = campus;
      if (c === undefined) throw new Error('no campus');
      const owing = c.holders.filter((x) => x.arrearsFen > 0);
      expect(owing.length).toBeGreaterThan(0);
      for (const x of owing) {
        expect(await p().db.one("SELECT reason FROM deny_entries WHERE type = 'holder' AND id = ?", [x.id])).toEqual({ reason: 'arrears' });
        expect((await purses(p().db, x.id)).arrears).toBe(x.arrearsFen);
      }
      expect(Number((await p().db.one('SELECT COUNT(*) AS n FROM deny_changes WHERE published_in IS NULL'))?.n)).toBe(0);
      await p().platform.sealer?.runOnce();
      const audit = await auditLedgerFull(p().db, p().crypto, { nowS: p().clock.nowS() });
      expect(audit.break).toBeNull();
    });

    it('is made once: a second seeding is refused, and the same seed makes the same holders', async () => {
      const { db, keys, ctx } = p().platform;
      await expect(seedCampus({ db, crypto: p().crypto, keys, auth: ctx.auth }, OPTIONS, p().clock.nowS())).rejects.toBeInstanceOf(
        ApiError,
      );
      const again = await HttpPlatform.on(d, { clearing: false });
      try {
        const other = await seedCampus(
          { db: again.platform.db, crypto: again.crypto, keys: again.platform.keys, auth: again.platform.ctx.auth },
          { ...OPTIONS, withPasswords: 0 },
          again.clock.nowS(),
        );
        const plan = (x: Campus) => x.holders.map(({ hasPassword: _, ...rest }) => rest);
        if (campus === undefined) throw new Error('no campus');
        expect(plan(other)).toEqual(plan(campus));
      } finally {
        await again.close();
      }
    });
  });
}
