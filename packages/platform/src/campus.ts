/**
 * A demo campus (issue 6's `npm start`, issue 7's simulator): merchants and terminals of two
 * canteens, a shop, a campus bus and a dorm gate; holders with cash, subsidies, some with a school
 * credit line and some in arrears; staff sign-ins for each role. Made through the same functions
 * the API uses, deterministically from a seed, so the same seed gives the same campus.
 *
 * Terminals are registered but not activated: each comes with its one-time activation code, as an
 * installer would get it (the POS app or `duet terminal enroll` activates it with its own key).
 */
import { type CryptoProvider, fen, type Role, type Scene } from '@duet/protocol';
import type { Authenticator, StaffRole } from './context.js';
import type { Db } from './db/db.js';
import { ApiError } from './errors.js';
import { credit, debit, holderAccounts, merchantPayable, post } from './ledger.js';
import { noteArrears, publishDenyChanges } from './recovery.js';
import { createMerchant, createTerminal } from './registry.js';
import { seededRandom } from './random.js';
import { seedHolder } from './seed.js';
import { prefetchKeys, type SigningKeys } from './signing-keys.js';

/** The places of the demo campus: merchant, scene, and how many terminals (windows, doors, buses). */
export const CAMPUS_PLACES: readonly {
  readonly name: string;
  readonly scene: Scene;
  readonly terminals: number;
  readonly place: string;
}[] = [
  { name: 'First Canteen / 第一食堂', scene: 'canteen', terminals: 6, place: 'Canteen 1 window / 一食堂窗口' },
  { name: 'Second Canteen / 第二食堂', scene: 'canteen', terminals: 6, place: 'Canteen 2 window / 二食堂窗口' },
  { name: 'Campus Shop / 校园超市', scene: 'shop', terminals: 2, place: 'Shop till / 超市收银台' },
  { name: 'Campus Bus / 校园巴士', scene: 'bus', terminals: 2, place: 'Bus / 校车' },
  { name: 'Dorm Gate / 宿舍门禁', scene: 'gate', terminals: 1, place: 'Dorm 5 gate / 5号楼门禁' },
];

/** The first holder id of a campus; holders are numbered from here. */
export const CAMPUS_FIRST_HOLDER_ID = 2_026_000_001;

export interface CampusOptions {
  /** Holders to make, 1 to 5,000. */
  readonly holders: number;
  /** The same seed makes the same campus. */
  readonly seed: number;
  /** Holders that get a password for signing in (the first ones), at most `holders`. */
  readonly withPasswords: number;
  /** The password every demo sign-in gets (staff and holders). */
  readonly password: string;
  readonly campus: number;
}

export interface CampusHolder {
  readonly id: number;
  readonly name: string;
  readonly role: Role;
  readonly cashFen: number;
  readonly subsidyFen: number;
  readonly creditLineFen: number;
  /** What the operator advanced for this holder, now owed. */
  readonly arrearsFen: number;
  readonly hasPassword: boolean;
}

export interface CampusTerminal {
  readonly id: number;
  readonly merchantId: number;
  readonly scene: Scene;
  readonly location: string;
  readonly activationCode: string;
}

export interface Campus {
  readonly merchants: readonly { readonly id: number; readonly name: string; readonly scene: Scene }[];
  readonly terminals: readonly CampusTerminal[];
  readonly holders: readonly CampusHolder[];
  readonly staff: readonly { readonly username: string; readonly role: StaffRole; readonly merchantId: number | null }[];
}

export interface CampusDeps {
  readonly db: Db;
  readonly crypto: CryptoProvider;
  readonly keys: SigningKeys;
  readonly auth: Authenticator;
}

const FAMILY = [
  'Wang 王',
  'Li 李',
  'Zhang 张',
  'Liu 刘',
  'Chen 陈',
  'Yang 杨',
  'Zhao 赵',
  'Huang 黄',
  'Zhou 周',
  'Wu 吴',
  'Xu 徐',
  'Sun 孙',
];
const GIVEN = ['Wei 伟', 'Fang 芳', 'Min 敏', 'Jing 静', 'Lei 磊', 'Yang 洋', 'Yan 艳', 'Jie 杰', 'Tao 涛', 'Ming 明', 'Xin 欣', 'Hao 浩'];

/**
 * Makes the demo campus in `deps`' database. Refuses (ApiError conflict) when holders of this
 * campus already exist: a campus is made once, and kept across restarts.
 */
export async function seedCampus(deps: CampusDeps, o: CampusOptions, nowS: number): Promise<Campus> {
  if (!Number.isSafeInteger(o.holders) || o.holders < 1 || o.holders > 5_000) throw new RangeError(`holders ${o.holders}: 1 to 5,000`);
  if (!Number.isSafeInteger(o.withPasswords) || o.withPasswords < 0 || o.withPasswords > o.holders)
    throw new RangeError(`withPasswords ${o.withPasswords}: 0 to ${o.holders}`);
  const { db, crypto, auth } = deps;
  if ((await db.one('SELECT id FROM holders WHERE id = ?', [CAMPUS_FIRST_HOLDER_ID])) !== undefined)
    throw new ApiError('conflict', 'the demo campus exists already');
  const random = seededRandom(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;

  const merchants: { id: number; name: string; scene: Scene }[] = [];
  const terminals: CampusTerminal[] = [];
  for (const place of CAMPUS_PLACES) {
    const made = await db.tx(async (q) => {
      const m = await createMerchant(q, place.name, place.scene, nowS);
      const ts: CampusTerminal[] = [];
      for (let i = 1; i <= place.terminals; i++) {
        const location = `${place.place} ${i}`;
        const { terminal, activationCode } = await createTerminal(
          q,
          crypto,
          { merchantId: m.id, scene: place.scene, campus: o.campus, location },
          nowS,
        );
        ts.push({ id: terminal.id, merchantId: m.id, scene: place.scene, location, activationCode });
      }
      return { merchant: { id: m.id, name: place.name, scene: place.scene }, terminals: ts };
    });
    merchants.push(made.merchant);
    terminals.push(...made.terminals);
  }

  const holders: CampusHolder[] = [];
  for (let k = 0; k < o.holders; k++) {
    const id = CAMPUS_FIRST_HOLDER_ID + k;
    const r = random();
    const role: Role = r < 0.85 ? 'student' : r < 0.95 ? 'teacher' : 'staff';
    // Whole yuan amounts: most students hold 20–300 yuan and a monthly meal subsidy.
    const cashFen = Math.floor(20 + random() * 280) * 100;
    const subsidyFen = role === 'student' && random() < 0.6 ? Math.floor(50 + random() * 150) * 100 : 0;
    const creditLineFen = role === 'student' && random() < 0.1 ? 10_000 : 0;
    const inArrears = random() < 0.05;
    const arrearsFen = inArrears ? Math.floor(5 + random() * 40) * 100 : 0;
    const name = `${pick(FAMILY)} ${pick(GIVEN)}`;
    await seedHolder(
      db,
      { id, name, role, campus: o.campus, cashFen: inArrears ? 0 : cashFen, subsidyFen: inArrears ? 0 : subsidyFen, creditLineFen },
      nowS,
    );
    const hasPassword = k < o.withPasswords;
    if (hasPassword) await auth.setHolderPassword(id, o.password);
    holders.push({
      id,
      name,
      role,
      cashFen: inArrears ? 0 : cashFen,
      subsidyFen: inArrears ? 0 : subsidyFen,
      creditLineFen,
      arrearsFen,
      hasPassword,
    });
  }

  // Holders in arrears: an offline payment the operator advanced at the first canteen, as clearing posts it.
  const owing = holders.filter((h) => h.arrearsFen > 0);
  const canteen = merchants[0];
  if (owing.length > 0 && canteen !== undefined) {
    const keys = await prefetchKeys(deps.keys);
    await db.tx(async (q) => {
      const payable = await merchantPayable(q, canteen.id);
      for (const h of owing) {
        const a = await holderAccounts(q, h.id);
        await post(q, {
          kind: 'offline_payment',
          reference: `campus-seed:${h.id}`,
          postedAtS: nowS,
          effectiveAtS: nowS,
          createdBy: 'campus-seed',
          memo: 'demo campus: a payment the operator advanced',
          postings: [debit(a.arrears, fen(h.arrearsFen)), credit(payable, fen(h.arrearsFen))],
        });
      }
      await noteArrears(
        q,
        owing.map((h) => h.id),
        nowS,
      );
      await publishDenyChanges(q, keys, nowS);
    });
  }

  const staff: { username: string; role: StaffRole; merchantId: number | null }[] = [
    { username: 'finance', role: 'school_finance', merchantId: null },
    ...merchants.map((m, i) => ({ username: `merchant${i + 1}`, role: 'merchant' as const, merchantId: m.id })),
  ];
  for (const s of staff) await auth.createStaff(s.username, o.password, s.role, s.merchantId);
  return { merchants, terminals, holders, staff };
}
