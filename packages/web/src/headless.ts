/**
 * A phone without a browser, for the browser tests and the benchmarks: the real wallet core,
 * enrolled with a running platform through the same calls the wallet app makes, its key and state
 * in memory. It makes the codes a POS page is then asked to accept.
 */
import { nodeCrypto } from '@duet/protocol/node';
import { PlatformClient } from '@duet/protocol/client';
import { MemoryKeyVault, MemoryWalletStore, Wallet } from '@duet/wallet';
import { acceptAgreement, currentAgreement, holderLogin, platformRenewal } from '@duet/wallet/platform';

export async function enrolledWallet(url: string, holderId: number, password: string): Promise<Wallet> {
  const crypto = nodeCrypto();
  const client = new PlatformClient(url, crypto);
  const session = await holderLogin(client, holderId, password);
  const label = 'headless phone (tests)';
  await acceptAgreement(client, session, (await currentAgreement(client, session)).version, label);
  const wallet = await Wallet.open({
    crypto,
    clock: { nowMs: () => Date.now() },
    vault: new MemoryKeyVault(crypto),
    store: new MemoryWalletStore(),
  });
  await wallet.renew(platformRenewal(client, session, label));
  return wallet;
}
