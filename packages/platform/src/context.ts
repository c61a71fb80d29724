/** What every route handler gets: storage, crypto, time, keys, and the caller it was authorised for. */
import type { CryptoProvider } from '@duet/protocol';
import type { Db } from './db/db.js';
import type { SigningKeys } from './signing-keys.js';

export interface Clock {
  nowMs(): number;
}

export type StaffRole = 'operator_admin' | 'school_finance' | 'merchant';

export type Principal =
  | { readonly kind: 'staff'; readonly id: number; readonly username: string; readonly role: StaffRole; readonly merchantId: number | null }
  | { readonly kind: 'holder'; readonly id: number }
  /** A terminal, with the merchant its certificate names (read in the same lookup as its key). */
  | { readonly kind: 'terminal'; readonly id: number; readonly merchantId: number };

/** How the HTTP layer authenticates callers; implemented over auth.ts (passwords, sessions, request signatures). */
export interface Authenticator {
  staffLogin(username: string, password: string, address: string): Promise<{ token: string; expiresAt: number; role: StaffRole }>;
  holderLogin(holderId: number, password: string, address: string): Promise<{ token: string; expiresAt: number }>;
  /** The principal a bearer token stands for, or undefined. */
  bearer(token: string): Promise<Principal | undefined>;
  logout(token: string): Promise<void>;
  /** Sets a holder's password (staff set the first one; holders change their own). */
  setHolderPassword(holderId: number, password: string): Promise<void>;
  /** Creates a staff account. */
  createStaff(username: string, password: string, role: StaffRole, merchantId: number | null): Promise<{ id: number }>;
  /** A terminal's signed request: the terminal principal, or throws ApiError(bad_signature/unauthenticated). */
  terminal(
    headers: Record<string, string | string[] | undefined>,
    method: string,
    path: string,
    body: Uint8Array,
    opts?: { readonly revokedMayCall?: boolean },
  ): Promise<Principal>;
}

export interface TrustListSource {
  /** The newest signed trust list, and the root keys terminals pin. */
  current(): Promise<{ version: number; bytes: Uint8Array }>;
  roots(): Promise<Array<{ keyId: number; suite: string; publicKey: Uint8Array }>>;
}

export interface PlatformContext {
  readonly db: Db;
  readonly crypto: CryptoProvider;
  readonly clock: Clock;
  readonly keys: SigningKeys;
  readonly trust: TrustListSource;
  readonly auth: Authenticator;
  /** Background clearing in this process (clearing.ts). */
  readonly clearing: ClearingControl;
}

/** What routes may ask of clearing: a run soon (an upload arrived), or every pending record now. */
export interface ClearingControl {
  kick(): void;
  drain(): Promise<{
    readonly records: number;
    readonly posted: number;
    readonly linked: number;
    readonly refused: number;
    readonly flagged: number;
  }>;
}

export function nowS(c: { clock: Clock }): number {
  return Math.floor(c.clock.nowMs() / 1000);
}
