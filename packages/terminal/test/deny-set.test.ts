/**
 * The compact deny set against a plain Set as the reference model (a differential test): whatever
 * full lists and deltas arrive, it denies exactly what the model denies. This covers both silent
 * failures of DESIGN §16: a list that denies too little and one that denies everything.
 */
import { DENY_TYPES, type DenyEntry, type DenyType, denyColumns, ProtocolError, signDenyList } from '@duet/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DenySet } from '../src/index.js';
import { makeWorld, T0_S } from './fixture.js';

const w = await makeWorld('ed25519');

async function sign(kind: 'full' | 'delta', version: number, base: number, entries: readonly DenyEntry[]) {
  return signDenyList(
    {
      signer: { suite: w.suite, keyId: 30 },
      kind,
      listVersion: version,
      baseVersion: base,
      issuedAt: T0_S,
      expiresAt: T0_S + 86_400,
      ...denyColumns(entries),
    },
    w.lists,
  );
}

const key = (t: DenyType, id: number) => `${t}:${id}`;
const entryArb = fc.record({ type: fc.constantFrom(...DENY_TYPES), id: fc.integer({ min: 1, max: 60 }) });
const uniqueEntries = (arb: fc.Arbitrary<{ type: DenyType; id: number }>) =>
  fc.uniqueArray(arb, { selector: (e) => key(e.type, e.id), maxLength: 40 });

describe('DenySet', () => {
  it('an empty list denies nobody; a list denies exactly its entries', async () => {
    const empty = DenySet.fromFull(await sign('full', 1, 0, []));
    for (const t of DENY_TYPES) for (let id = 1; id < 100; id++) expect(empty.has(t, id)).toBe(false);
    const one = DenySet.fromFull(await sign('full', 2, 0, [{ type: 'holder', id: 7, op: 'add' }]));
    expect(one.has('holder', 7)).toBe(true);
    expect(one.has('credential', 7)).toBe(false);
    expect(one.has('holder', 6)).toBe(false);
    expect(one.has('holder', 8)).toBe(false);
  });

  it('matches a Set model through a full list and a chain of deltas', async () => {
    await fc.assert(
      fc.asyncProperty(
        uniqueEntries(entryArb),
        fc.array(fc.tuple(uniqueEntries(entryArb), fc.array(fc.boolean(), { minLength: 40, maxLength: 40 })), { maxLength: 4 }),
        async (initial, deltas) => {
          const model = new Set(initial.map((e) => key(e.type, e.id)));
          let set = DenySet.fromFull(
            await sign(
              'full',
              1,
              0,
              initial.map((e) => ({ ...e, op: 'add' as const })),
            ),
          );
          let version = 1;
          for (const [entries, removes] of deltas) {
            const ops = entries.map((e, i) => ({ ...e, op: removes[i] === true ? ('remove' as const) : ('add' as const) }));
            set = set.applyDelta(await sign('delta', version + 1, version, ops));
            version++;
            for (const e of ops) {
              if (e.op === 'add') model.add(key(e.type, e.id));
              else model.delete(key(e.type, e.id));
            }
          }
          expect(set.version).toBe(version);
          expect(set.size).toBe(model.size);
          for (const t of DENY_TYPES) for (let id = 1; id <= 61; id++) expect(set.has(t, id)).toBe(model.has(key(t, id)));
        },
      ),
      { numRuns: 60, seed: 20261126 },
    );
  });

  it('refuses a delta for another base version', async () => {
    const set = DenySet.fromFull(await sign('full', 5, 0, []));
    const delta = await sign('delta', 7, 6, [{ type: 'card', id: 1, op: 'add' }]);
    expect(() => set.applyDelta(delta)).toThrow(ProtocolError);
    try {
      set.applyDelta(delta);
    } catch (e) {
      expect((e as ProtocolError).code).toBe('bad_base');
    }
  });

  it('holds 1,000,000 entries in at most 64 MB (8 bytes each) and finds them', async () => {
    const n = 1_000_000;
    const tags = new Uint8Array(n).fill(1);
    const ids = new Float64Array(n);
    for (let i = 0; i < n; i++) ids[i] = 1 + i * 3;
    const list = await signDenyList(
      {
        signer: { suite: w.suite, keyId: 30 },
        kind: 'full',
        listVersion: 1,
        baseVersion: 0,
        issuedAt: T0_S,
        expiresAt: T0_S + 86_400,
        tags,
        ids,
      },
      w.lists,
    );
    const set = DenySet.fromFull(list);
    expect(set.size).toBe(n);
    expect(set.byteLength).toBe(8 * n);
    expect(set.byteLength).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(set.has('credential', 1 + 3 * 999_999)).toBe(true);
    expect(set.has('credential', 2)).toBe(false);
    expect(set.has('holder', 1)).toBe(false);
  });
});
