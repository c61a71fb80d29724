/**
 * The platform as the web apps reach it: the same PlatformClient the headless wallet and terminal
 * use (@duet/protocol/client), on this page's origin. A session token is kept per app in
 * localStorage; an error carries its stable code and words in both languages.
 */
import { type CryptoProvider, webCrypto } from '@duet/protocol';
import { PlatformCallError, PlatformClient } from '@duet/protocol/client';
import { words } from './i18n.js';

export { PlatformCallError, PlatformClient };

let sharedCrypto: CryptoProvider | undefined;
/** WebCrypto for P-256 and Ed25519 (keys can be non-extractable), audited pure JS for SM2. */
export function browserCrypto(): CryptoProvider {
  sharedCrypto ??= webCrypto();
  return sharedCrypto;
}

export function platformClient(): PlatformClient {
  return new PlatformClient(location.origin, browserCrypto());
}

/** A session kept in localStorage under `duet.<app>.session`. */
export class Session<T extends { readonly token: string }> {
  constructor(private readonly app: string) {}

  get(): T | undefined {
    try {
      const raw = localStorage.getItem(`duet.${this.app}.session`);
      return raw === null ? undefined : (JSON.parse(raw) as T);
    } catch {
      return undefined;
    }
  }

  set(s: T | undefined): void {
    if (s === undefined) localStorage.removeItem(`duet.${this.app}.session`);
    else localStorage.setItem(`duet.${this.app}.session`, JSON.stringify(s));
  }
}

/** The words to show for any failure: an API error's own, or the thrown thing's message. */
export function errorWords(e: unknown): string {
  if (e instanceof PlatformCallError) return words(e);
  if (typeof e === 'object' && e !== null && 'en' in e && 'zh' in e) return words(e as { en: string; zh: string });
  return e instanceof Error ? e.message : String(e);
}

/** True when the failure is the network, not the platform saying no. */
export function isUnreachable(e: unknown): boolean {
  return e instanceof PlatformCallError && e.code === 'unreachable';
}
