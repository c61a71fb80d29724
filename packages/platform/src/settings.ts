/**
 * The operator's risk settings: what credentials are issued with and what the signed risk policy
 * tells terminals. Kept as one versioned JSON document; every change is a new version, and the
 * policy screen shows the worst case before saving (worstCaseOfflineLoss).
 */
import { fen, type Fen, SCENES, type Scene, type Role, ROLES } from '@duet/protocol';
import type { Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';

export interface SceneSetting {
  readonly scene: Scene;
  readonly roles: readonly Role[];
  readonly campusOnly: boolean;
  readonly perPaymentMaxFen: number;
}

export interface RiskSettings {
  /** Credential validity (DESIGN §5: e.g. 72 h). */
  readonly credentialValidityS: number;
  /** Caps on what one credential may spend offline, before funds are considered. */
  readonly offlineTotalCapFen: number;
  readonly perPaymentCapFen: number;
  readonly offlineCountCap: number;
  /** Below this much available money no credential is issued (it could buy nothing). */
  readonly minimumAvailableFen: number;
  /** Terminal policy. */
  readonly codeWindowS: number;
  readonly clockSkewS: number;
  readonly maxOfflineS: number;
  readonly maxListAgeS: number;
  readonly terminalPerPaymentMaxFen: number;
  readonly dayTotalMaxFen: number;
  readonly dayCountMax: number;
  readonly onlineBudgetMs: number;
  readonly scenes: readonly SceneSetting[];
  /**
   * Recovery (issue 5): an arrears case still open this many days after it was opened is due for
   * third-party collection (recovery.ts). Absent in settings saved before it existed: the default.
   */
  readonly collectionAfterDays: number;
}

/**
 * Bounds of collectionAfterDays. At least two weeks: a payer normally tops up within that, and the
 * top-up repays the debt first. At most 1,095 days (three years): the PRC Civil Code (art. 188) gives
 * three years to bring a claim, so a debt handed over later may no longer be enforceable.
 */
export const COLLECTION_AFTER_DAYS_MIN = 14;
export const COLLECTION_AFTER_DAYS_MAX = 1_095;

export const DEFAULT_SETTINGS: RiskSettings = {
  credentialValidityS: 72 * 3600,
  offlineTotalCapFen: 20_000,
  perPaymentCapFen: 5_000,
  offlineCountCap: 20,
  minimumAvailableFen: 100,
  codeWindowS: 60,
  clockSkewS: 300,
  maxOfflineS: 48 * 3600,
  maxListAgeS: 48 * 3600,
  terminalPerPaymentMaxFen: 10_000,
  dayTotalMaxFen: 30_000,
  dayCountMax: 10,
  onlineBudgetMs: 300,
  scenes: [
    { scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMaxFen: 5_000 },
    { scene: 'shop', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMaxFen: 10_000 },
    { scene: 'bus', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMaxFen: 500 },
    { scene: 'gate', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMaxFen: 0 },
  ],
  collectionAfterDays: 90,
};

export const settingsMigrations: Migration[] = [
  {
    id: 'settings/001-risk-settings',
    sql: (d: Dialect) => [
      `CREATE TABLE risk_settings (version ${d.int} PRIMARY KEY, json TEXT NOT NULL, saved_at ${d.int} NOT NULL, saved_by TEXT NOT NULL)`,
    ],
  },
];

const int = (v: unknown, name: string, min: number, max: number): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ApiError('validation_failed', `${name} must be an integer from ${min} to ${max}`);
  }
  return v;
};

/** Parses settings from outside (the policy screen) with bounds, or refuses with the field named. */
export function parseSettings(input: unknown): RiskSettings {
  if (typeof input !== 'object' || input === null) throw new ApiError('validation_failed', 'settings must be an object');
  const o = input as Record<string, unknown>;
  const scenesIn = o.scenes;
  if (!Array.isArray(scenesIn) || scenesIn.length > SCENES.length)
    throw new ApiError('validation_failed', 'scenes must be a list of at most 4');
  const seen = new Set<string>();
  const scenes = scenesIn.map((x: unknown, i) => {
    const s = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
    const scene = SCENES.find((n) => n === s.scene);
    if (scene === undefined || seen.has(scene)) throw new ApiError('validation_failed', `scenes[${i}].scene`);
    seen.add(scene);
    const roles = Array.isArray(s.roles) ? s.roles.map((r) => ROLES.find((n) => n === r)) : [];
    if (roles.some((r) => r === undefined)) throw new ApiError('validation_failed', `scenes[${i}].roles`);
    return {
      scene,
      roles: roles as Role[],
      campusOnly: s.campusOnly === true,
      perPaymentMaxFen: int(s.perPaymentMaxFen, `scenes[${i}].perPaymentMaxFen`, 0, 1_000_000),
    };
  });
  scenes.sort((a, b) => SCENES.indexOf(a.scene) - SCENES.indexOf(b.scene));
  const s: RiskSettings = {
    credentialValidityS: int(o.credentialValidityS, 'credentialValidityS', 600, 31 * 86_400),
    offlineTotalCapFen: int(o.offlineTotalCapFen, 'offlineTotalCapFen', 0, 10_000_000),
    perPaymentCapFen: int(o.perPaymentCapFen, 'perPaymentCapFen', 0, 1_000_000),
    offlineCountCap: int(o.offlineCountCap, 'offlineCountCap', 1, 1000),
    minimumAvailableFen: int(o.minimumAvailableFen, 'minimumAvailableFen', 0, 1_000_000),
    codeWindowS: int(o.codeWindowS, 'codeWindowS', 10, 3600),
    clockSkewS: int(o.clockSkewS, 'clockSkewS', 0, 3600),
    maxOfflineS: int(o.maxOfflineS, 'maxOfflineS', 60, 30 * 86_400),
    maxListAgeS: int(o.maxListAgeS, 'maxListAgeS', 60, 30 * 86_400),
    terminalPerPaymentMaxFen: int(o.terminalPerPaymentMaxFen, 'terminalPerPaymentMaxFen', 0, 1_000_000),
    dayTotalMaxFen: int(o.dayTotalMaxFen, 'dayTotalMaxFen', 0, 10_000_000),
    dayCountMax: int(o.dayCountMax, 'dayCountMax', 0, 1000),
    onlineBudgetMs: int(o.onlineBudgetMs, 'onlineBudgetMs', 10, 10_000),
    scenes,
    collectionAfterDays:
      o.collectionAfterDays === undefined
        ? DEFAULT_SETTINGS.collectionAfterDays
        : int(o.collectionAfterDays, 'collectionAfterDays', COLLECTION_AFTER_DAYS_MIN, COLLECTION_AFTER_DAYS_MAX),
  };
  if (s.perPaymentCapFen > s.offlineTotalCapFen) throw new ApiError('validation_failed', 'perPaymentCapFen above offlineTotalCapFen');
  if (s.dayTotalMaxFen < s.terminalPerPaymentMaxFen)
    throw new ApiError('validation_failed', 'dayTotalMaxFen below terminalPerPaymentMaxFen');
  return s;
}

export async function currentSettings(q: Queryable): Promise<{ version: number; settings: RiskSettings }> {
  const r = await q.one('SELECT version, json FROM risk_settings ORDER BY version DESC LIMIT 1');
  if (r === undefined) return { version: 0, settings: DEFAULT_SETTINGS };
  return { version: Number(r.version), settings: parseSettings(JSON.parse(String(r.json))) };
}

export async function saveSettings(q: Queryable, s: RiskSettings, by: string, nowS: number): Promise<number> {
  const { version } = await currentSettings(q);
  await q.run('INSERT INTO risk_settings (version, json, saved_at, saved_by) VALUES (?, ?, ?, ?)', [
    version + 1,
    JSON.stringify(s),
    nowS,
    by,
  ]);
  return version + 1;
}

/**
 * The worst case one holder can cost the operator offline before the platform sees the records
 * (DESIGN §16 "one payer, many merchants"): on each of N terminals the credential may spend up to
 * the least of its offline total and the terminal's day cap, so the exposure is bounded by the
 * credential total times the terminals it can reach, and by the per-terminal day caps summed.
 */
export function worstCaseOfflineLoss(s: RiskSettings, terminals: number): { perTerminalFen: Fen; totalFen: Fen; explanation: string } {
  const perTerminal = Math.min(s.offlineTotalCapFen, s.dayTotalMaxFen * Math.ceil(s.credentialValidityS / 86_400));
  const total = perTerminal * Math.max(1, terminals);
  return {
    perTerminalFen: fen(perTerminal),
    totalFen: fen(total),
    explanation:
      `each terminal applies the credential's offline total (${s.offlineTotalCapFen} fen) and its day cap (${s.dayTotalMaxFen} fen/day over ` +
      `${Math.ceil(s.credentialValidityS / 86_400)} day(s) of validity) on its own; a payer visiting all ${terminals} terminals offline can spend at most that on each`,
  };
}
