/** What issuance, the terminal registry and list publication need from the key store: the active key of a role. */
import type { Signer } from '@duet/protocol';

export type SigningRole = 'issuer' | 'terminal_ca' | 'list_signer';

export interface SigningKeys {
  /** The key that signs new objects of this role now, with its id in the trust list. */
  active(role: SigningRole): Promise<{ readonly keyId: number; readonly signer: Signer }>;
}

/**
 * The active keys of every role, read now. Call it before a transaction that signs: the key store
 * reads the database, which must not happen inside another transaction on the same connection.
 */
export async function prefetchKeys(keys: SigningKeys): Promise<SigningKeys> {
  const roles: SigningRole[] = ['issuer', 'terminal_ca', 'list_signer'];
  const found = new Map(await Promise.all(roles.map(async (r) => [r, await keys.active(r)] as const)));
  return {
    active: async (role) => {
      const k = found.get(role);
      if (k === undefined) throw new Error(`no active ${role} key`);
      return k;
    },
  };
}
