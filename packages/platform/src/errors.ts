/**
 * API errors: a closed set of codes, each mapped to one HTTP status in one table (as trpc does) and
 * said in English and Chinese. Anything else thrown is converted at the edge into `internal`.
 */

export const API_ERRORS = {
  bad_request: { status: 400, en: 'The request is malformed', zh: '请求格式错误' },
  validation_failed: { status: 400, en: 'A field is missing or out of range', zh: '字段缺失或超出范围' },
  unauthenticated: { status: 401, en: 'Sign in first', zh: '请先登录' },
  bad_credentials: { status: 401, en: 'Wrong account or password', zh: '账号或密码错误' },
  bad_signature: { status: 401, en: 'The request signature does not verify', zh: '请求签名验证失败' },
  forbidden: { status: 403, en: 'Not allowed for your role', zh: '当前角色无权执行此操作' },
  not_found: { status: 404, en: 'Not found', zh: '未找到' },
  conflict: { status: 409, en: 'It conflicts with the current state', zh: '与当前状态冲突' },
  idempotency_mismatch: { status: 409, en: 'This idempotency key was used with a different request', zh: '该幂等键已用于不同的请求' },
  agreement_required: { status: 409, en: 'Sign the withholding agreement first', zh: '请先签署代扣协议' },
  account_blocked: { status: 403, en: 'The account is blocked', zh: '账户已冻结' },
  in_arrears: { status: 403, en: 'Repay the amount owed first', zh: '请先还清欠款' },
  bad_proof: { status: 400, en: 'The device did not prove it holds its key', zh: '设备未能证明持有其密钥' },
  bad_countersignature: {
    status: 400,
    en: 'The countersignature does not verify under the registered witness key',
    zh: '副署签名无法用已登记的见证密钥验证',
  },
  challenge_expired: { status: 400, en: 'The challenge expired: ask for a new one', zh: '挑战已过期，请重新获取' },
  activation_invalid: { status: 400, en: 'The activation code is wrong, used or expired', zh: '激活码错误、已使用或已过期' },
  insufficient_funds: { status: 402, en: 'Insufficient balance', zh: '余额不足' },
  too_many_attempts: { status: 429, en: 'Too many attempts: wait and try again', zh: '尝试次数过多，请稍后再试' },
  topup_unavailable: { status: 403, en: 'Top-up is not available here: top up at a cashier', zh: '此处不支持充值，请到充值点充值' },
  payload_too_large: { status: 413, en: 'The request is too large', zh: '请求过大' },
  unavailable: { status: 503, en: 'Storage is unavailable: retry shortly', zh: '存储暂不可用，请稍后重试' },
  internal: { status: 500, en: 'Internal error', zh: '内部错误' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    /** Plain-words detail for logs and the caller (never secrets). */
    readonly detail = '',
    /** Seconds after which a retry makes sense (503, 429). */
    readonly retryAfterS?: number,
  ) {
    super(`${code}: ${API_ERRORS[code].en}${detail === '' ? '' : ` (${detail})`}`);
  }

  get status(): number {
    return API_ERRORS[this.code].status;
  }

  toJSON(): { code: ApiErrorCode; en: string; zh: string; detail?: string } {
    const w = API_ERRORS[this.code];
    return { code: this.code, en: w.en, zh: w.zh, ...(this.detail === '' ? {} : { detail: this.detail }) };
  }
}
