/**
 * The one error the protocol package throws. Every decoder, verifier and encoder either returns a
 * typed value or throws a `ProtocolError` with a stable `code`; nothing else escapes (the fuzz
 * suite in test/fuzz.test.ts holds us to that).
 */

/** Stable codes. Never renumber or rename: terminals log them and vendors match on them. */
export const PROTOCOL_ERROR_CODES = [
  'bad_length',
  'unknown_version',
  'unknown_type',
  'unknown_suite',
  'unknown_key',
  'wrong_key_role',
  'bad_key',
  'bad_signature',
  'bad_value',
  'not_canonical',
  'trailing_bytes',
  'too_large',
  'bad_encoding',
  'bad_prefix',
  'expired',
  'not_yet_valid',
  'stale_list',
  'version_regressed',
  'bad_base',
] as const;
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

interface Words {
  readonly en: string;
  readonly zh: string;
}

/** What each code means, in the two languages every screen and log speaks. */
export const PROTOCOL_ERROR_WORDS: { readonly [C in ProtocolErrorCode]: Words } = {
  bad_length: { en: 'The data is too short or has a wrong length', zh: '数据长度错误或数据被截断' },
  unknown_version: { en: 'Unknown format version', zh: '不支持的格式版本' },
  unknown_type: { en: 'This is not the kind of object expected here', zh: '对象类型不符' },
  unknown_suite: { en: 'Unknown signature suite', zh: '不支持的签名算法套件' },
  unknown_key: { en: 'The signing key is not in the trust list', zh: '签名密钥不在信任列表中' },
  wrong_key_role: { en: 'The key is not allowed to sign this kind of object', zh: '该密钥无权签发此类对象' },
  bad_key: { en: 'The key is malformed or does not match', zh: '密钥格式错误或不匹配' },
  bad_signature: { en: 'The signature does not verify', zh: '签名验证失败' },
  bad_value: { en: 'A field holds a value outside its allowed range', zh: '字段取值超出允许范围' },
  not_canonical: { en: 'The encoding is not in its one canonical form', zh: '编码不是唯一规范形式' },
  trailing_bytes: { en: 'Unexpected bytes after the end of the object', zh: '对象末尾有多余数据' },
  too_large: { en: 'The data exceeds the size limit', zh: '数据超过大小上限' },
  bad_encoding: { en: 'The text encoding is invalid', zh: '文本编码无效' },
  bad_prefix: { en: 'This is not a Duet code', zh: '这不是 Duet 付款码' },
  expired: { en: 'It has expired', zh: '已过期' },
  not_yet_valid: { en: 'It is not valid yet', zh: '尚未生效' },
  stale_list: { en: 'The list is older than the policy allows', zh: '名单已过期，超出策略允许时间' },
  version_regressed: { en: 'The version is older than the one already held', zh: '版本低于当前已有版本' },
  bad_base: { en: 'The delta does not apply to the list version held', zh: '增量名单与当前名单版本不匹配' },
};

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  /** Which field or step failed, in plain words for logs (not translated). */
  readonly detail: string;
  readonly en: string;
  readonly zh: string;

  constructor(code: ProtocolErrorCode, detail: string, options?: { cause?: unknown }) {
    const words = PROTOCOL_ERROR_WORDS[code];
    super(`${code}: ${words.en} (${detail})`, options);
    this.code = code;
    this.detail = detail;
    this.en = words.en;
    this.zh = words.zh;
  }

  toJSON(): { code: ProtocolErrorCode; detail: string; en: string; zh: string } {
    return { code: this.code, detail: this.detail, en: this.en, zh: this.zh };
  }
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return e instanceof ProtocolError;
}

/** Tagged result for callers that prefer values to exceptions. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ProtocolError };

/** Runs `fn` and turns a ProtocolError into a failed Result; any other exception is a bug and is rethrown. */
export function attempt<T>(fn: () => T): Result<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
}

/** Async twin of `attempt`. */
export async function attemptAsync<T>(fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
}
