/**
 * The console's way to the platform: plain fetch with the staff session's bearer token (no key
 * material, so none of the wallet's or terminal's crypto is bundled). An error answer becomes an
 * ApiFailure carrying the platform's stable code, its words in both languages and its detail; a
 * 401 on any call but sign-in ends the session and brings back the sign-in screen.
 */
import { Session } from '../shared/api.js';
import { t, words } from '../shared/i18n.js';

export const STAFF_ROLES = ['operator_admin', 'school_finance', 'merchant'] as const;
export type StaffRole = (typeof STAFF_ROLES)[number];

/** The sign-in answer, kept exactly as the platform returned it. */
export interface StaffSession {
  readonly token: string;
  readonly expiresAt: number;
  readonly role: StaffRole;
}

/** The longest a console call may take before the page gives up and says so. */
const CALL_TIMEOUT_MS = 15_000;

export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly code: string,
    readonly en: string,
    readonly zh: string,
    readonly status: number,
    readonly detail?: string,
  ) {
    super(`${code}: ${en}${detail === undefined ? '' : ` (${detail})`}`);
  }
}

const store = new Session<StaffSession>('console');

/** The stored session when it has the shape of a staff sign-in answer; anything else is no session. */
export function loadSession(): StaffSession | undefined {
  const s: unknown = store.get();
  if (typeof s !== 'object' || s === null) return undefined;
  const o = s as Record<string, unknown>;
  const role = STAFF_ROLES.find((r) => r === o.role);
  if (typeof o.token !== 'string' || o.token.length === 0 || o.token.length > 200 || role === undefined) return undefined;
  return { token: o.token, expiresAt: typeof o.expiresAt === 'number' ? o.expiresAt : 0, role };
}

const sessionListeners = new Set<() => void>();
export function onSessionChange(f: () => void): () => void {
  sessionListeners.add(f);
  return () => sessionListeners.delete(f);
}

let why: string | undefined;
/** Why the last session ended, when the platform said (shown on the sign-in screen). */
export function signedOutWhy(): string | undefined {
  return why;
}

/** Ends the session here; `reason` is shown on the sign-in screen. */
export function clearSession(reason?: string): void {
  why = reason;
  localStorage.removeItem('duet.console.session');
  for (const f of sessionListeners) f();
}

function failureOf(status: number, body: unknown): ApiFailure {
  const e = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof e === 'object' && e !== null) {
    const o = e as Record<string, unknown>;
    if (typeof o.code === 'string' && typeof o.en === 'string' && typeof o.zh === 'string')
      return new ApiFailure(o.code, o.en, o.zh, status, typeof o.detail === 'string' && o.detail !== '' ? o.detail : undefined);
  }
  return new ApiFailure('bad_answer', `The platform answered ${status}`, `平台返回 ${status}`, status);
}

async function send(method: string, path: string, json?: unknown, token?: string): Promise<Response> {
  const headers: Record<string, string> = {};
  if (json !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  try {
    return await fetch(path, {
      method,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch {
    throw new ApiFailure('unreachable', 'The platform cannot be reached', '无法连接平台', 0);
  }
}

async function authed(method: string, path: string, json?: unknown): Promise<Response> {
  const s = loadSession();
  if (s === undefined) {
    clearSession();
    throw new ApiFailure('unauthenticated', 'Sign in first', '请先登录', 401);
  }
  const res = await send(method, path, json, s.token);
  if (res.status === 401) {
    const f = failureOf(401, await res.json().catch(() => undefined));
    clearSession(words(f));
    throw f;
  }
  return res;
}

/** A JSON call with the session; the answer is returned as unknown for the caller to parse. */
export async function call(method: 'GET' | 'POST' | 'PUT', path: string, json?: unknown): Promise<unknown> {
  const res = await authed(method, path, json);
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) throw failureOf(res.status, body);
  if (body === undefined) throw new ApiFailure('bad_answer', 'The platform sent no JSON', '平台未返回 JSON', res.status);
  return body;
}

/** A text file (CSV) with the session. */
export async function callText(path: string): Promise<string> {
  const res = await authed('GET', path);
  if (!res.ok) throw failureOf(res.status, await res.json().catch(() => undefined));
  return res.text();
}

export async function signIn(username: string, password: string): Promise<StaffSession> {
  const res = await send('POST', '/v1/staff/login', { username, password });
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) throw failureOf(res.status, body);
  store.set(body as StaffSession);
  const s = loadSession();
  if (s === undefined) throw new ApiFailure('bad_answer', 'The sign-in answer has no session', '登录应答缺少会话', res.status);
  why = undefined;
  for (const f of sessionListeners) f();
  return s;
}

export async function signOut(): Promise<void> {
  const s = loadSession();
  clearSession();
  if (s !== undefined) await send('POST', '/v1/logout', undefined, s.token).catch(() => undefined);
}

/** The words for any failure, in the current language, with the platform's detail when it gave one. */
export function failureWords(e: unknown): string {
  if (e instanceof ApiFailure) return e.detail === undefined ? words(e) : `${words(e)} (${e.detail})`;
  return e instanceof Error ? e.message : String(e);
}

// Parsing answers: each field is checked for its type; a missing field is a bad answer, not a crash.

type Obj = Record<string, unknown>;

export function bad(field: string): ApiFailure {
  return new ApiFailure('bad_answer', `The platform's answer lacks ${field}`, `平台应答缺少 ${field}`, 0);
}

export function obj(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field);
  return v as Obj;
}

export function arr(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw bad(field);
  return v;
}

export function int(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(field);
  return v;
}

export function intOrNull(v: unknown, field: string): number | null {
  return v === null || v === undefined ? null : int(v, field);
}

export function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw bad(field);
  return v;
}

export function strOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** Seconds since the epoch from an ISO time or a number of seconds; null when absent. */
export function epochS(v: unknown, field: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return int(v, field);
  const ms = Date.parse(str(v, field));
  if (Number.isNaN(ms)) throw bad(field);
  return Math.floor(ms / 1000);
}

/** A role's name as people say it. */
export function roleWords(r: StaffRole): string {
  return r === 'operator_admin'
    ? t('Operator', '运营管理员')
    : r === 'school_finance'
      ? t('School finance', '学校财务')
      : t('Merchant', '商户');
}
