/**
 * Decision outcomes: one stable code per reason, with the words a cashier reads at a glance, in
 * Chinese and English. Codes are logged, uploaded and matched by vendors: never rename one.
 */

export const DECLINE_REASONS = {
  amount_invalid: { en: 'Amount not valid', zh: '金额无效' },
  not_a_code: { en: 'Not a Duet payment code', zh: '不是 Duet 付款码' },
  code_malformed: { en: 'Code damaged or unreadable', zh: '付款码损坏或无法识别' },
  issuer_unknown: { en: 'Code from an unknown issuer', zh: '付款码签发方未知' },
  credential_forged: { en: 'Credential signature invalid', zh: '凭证签名无效' },
  code_forged: { en: 'Code signature invalid', zh: '付款码签名无效' },
  credential_expired: { en: 'Credential expired: open the app online to renew', zh: '凭证已过期，请联网打开应用更新' },
  credential_not_yet_valid: { en: 'Credential not valid yet', zh: '凭证尚未生效' },
  code_expired: { en: 'Code expired: refresh the code', zh: '付款码已过期，请刷新' },
  code_from_future: { en: 'Code time is ahead: check the phone clock', zh: '付款码时间超前，请检查手机时间' },
  replay: { en: 'Code already used', zh: '付款码已使用' },
  credential_denied: { en: 'Credential blocked', zh: '凭证已被冻结' },
  holder_denied: { en: 'Account blocked: see the card office', zh: '账户已冻结，请到卡务中心处理' },
  scope_not_allowed: { en: 'Not valid at this kind of terminal', zh: '此凭证不可在此类终端使用' },
  role_not_allowed: { en: 'Not allowed for this user type', zh: '此身份类型不可在此使用' },
  campus_not_allowed: { en: 'Campus members only', zh: '仅限本校区人员' },
  over_payment_limit: { en: 'Over the single offline payment limit', zh: '超过单笔离线支付限额' },
  over_day_total: { en: "Over today's offline total at this terminal", zh: '超过本终端当日离线累计限额' },
  over_day_count: { en: "Over today's offline payment count at this terminal", zh: '超过本终端当日离线笔数' },
  over_offline_total: { en: 'Over the offline total of this credential', zh: '超过凭证离线累计额度' },
  over_offline_count: { en: 'Over the offline payment count of this credential', zh: '超过凭证离线笔数' },
  sync_overdue: { en: 'Terminal offline too long: connect to sync', zh: '终端离线时间过长，请联网同步' },
  lists_stale: { en: 'Terminal lists out of date: connect to sync', zh: '终端名单已过期，请联网同步' },
  terminal_not_ready: { en: 'Terminal not set up: enrol and sync first', zh: '终端未就绪，请先注册并同步' },
  terminal_certificate_expired: { en: 'Terminal certificate expired', zh: '终端证书已过期' },
  clock_regressed: { en: 'Terminal clock went back: fix the clock', zh: '终端时钟回拨，请校准时间' },
  journal_unavailable: { en: 'Cannot save the record: payment not taken', zh: '无法保存交易记录，未扣款' },
  declined_online: { en: 'Declined by the platform', zh: '平台拒绝交易' },
  insufficient_funds: { en: 'Insufficient balance', zh: '余额不足' },
  refused_before_restart: { en: 'Refused before the terminal restarted', zh: '终端重启前已拒绝' },
} as const;

export type DeclineReason = keyof typeof DECLINE_REASONS;

export function reasonWords(reason: DeclineReason): { en: string; zh: string } {
  return DECLINE_REASONS[reason];
}
