/**
 * The one error the wallet throws for operating errors. Each code is stable (apps and logs match on
 * it) and has words in English and Chinese that say what happened and what to do. Programmer errors
 * (a bad option) are TypeError or RangeError instead: they are bugs, not states to show a holder.
 */

export const WALLET_ERROR_CODES = [
  'no_credential',
  'credential_expired',
  'credential_not_yet_valid',
  'counter_exhausted',
  'wrong_device',
  'credential_invalid',
  'credential_outdated',
  'store_corrupt',
  'store_failed',
  'state_lost',
  'key_lost',
  'key_mismatch',
  'key_corrupt',
  'key_exists',
  'bad_challenge',
  'renewal_failed',
  'wallet_closed',
] as const;
export type WalletErrorCode = (typeof WALLET_ERROR_CODES)[number];

export interface Words {
  readonly en: string;
  readonly zh: string;
}

export const WALLET_ERROR_WORDS: { readonly [C in WalletErrorCode]: Words } = {
  no_credential: { en: 'No payment credential yet: go online to activate offline payment', zh: '尚无付款凭证，请联网开通离线支付' },
  credential_expired: { en: 'Payment credential expired: go online to renew it', zh: '付款凭证已过期，请联网更新' },
  credential_not_yet_valid: { en: 'Payment credential not valid yet: check the phone clock', zh: '付款凭证尚未生效，请检查手机时间' },
  counter_exhausted: {
    en: 'This wallet can make no more codes: reset it and activate again',
    zh: '本钱包已无法再生成付款码，请重置后重新开通',
  },
  wrong_device: { en: 'The credential belongs to another device key', zh: '该凭证属于其他设备密钥' },
  credential_invalid: { en: 'The credential is damaged or not signed by a trusted issuer', zh: '凭证已损坏或非可信机构签发' },
  credential_outdated: { en: 'A newer credential is already installed', zh: '已安装更新的凭证' },
  store_corrupt: { en: 'Wallet data is damaged: reset the wallet and activate again', zh: '钱包数据已损坏，请重置钱包后重新开通' },
  store_failed: { en: 'Cannot read or save wallet data: check free storage and try again', zh: '无法读写钱包数据，请检查存储空间后重试' },
  state_lost: { en: 'Wallet data is missing: reset the wallet and activate again', zh: '钱包数据丢失，请重置钱包后重新开通' },
  key_lost: { en: 'The device key is missing: reset the wallet and activate again', zh: '设备密钥丢失，请重置钱包后重新开通' },
  key_mismatch: { en: 'The device key does not match the wallet data: reset the wallet', zh: '设备密钥与钱包数据不符，请重置钱包' },
  key_corrupt: { en: 'The device key is damaged: reset the wallet and activate again', zh: '设备密钥已损坏，请重置钱包后重新开通' },
  key_exists: { en: 'A device key already exists here', zh: '此处已有设备密钥' },
  bad_challenge: { en: 'The platform sent a malformed challenge: try again', zh: '平台发来的验证挑战格式错误，请重试' },
  renewal_failed: { en: 'Could not renew the credential: try again when online', zh: '凭证更新失败，请联网后重试' },
  wallet_closed: { en: 'The wallet is closed', zh: '钱包已关闭' },
};

export class WalletError extends Error {
  override readonly name = 'WalletError';
  readonly code: WalletErrorCode;
  /** What failed, in plain words for logs (not translated). */
  readonly detail: string;
  readonly en: string;
  readonly zh: string;

  constructor(code: WalletErrorCode, detail: string, options?: { cause?: unknown }) {
    const words = WALLET_ERROR_WORDS[code];
    super(`${code}: ${words.en} (${detail})`, options);
    this.code = code;
    this.detail = detail;
    this.en = words.en;
    this.zh = words.zh;
  }

  toJSON(): { code: WalletErrorCode; detail: string; en: string; zh: string } {
    return { code: this.code, detail: this.detail, en: this.en, zh: this.zh };
  }
}

export function isWalletError(e: unknown, code?: WalletErrorCode): e is WalletError {
  return e instanceof WalletError && (code === undefined || e.code === code);
}

/** Wraps what a store or vault threw: a WalletError passes through, anything else becomes `code`. */
export function asWalletError(e: unknown, code: WalletErrorCode, detail: string): WalletError {
  if (e instanceof WalletError) return e;
  return new WalletError(code, `${detail}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
