/**
 * What the cashier types at the keypad, parsed with bounds: more than zero, at most the policy's
 * single-payment cap, at most two decimals. Integer fen throughout; the text is never a float.
 */
import { formatYuan, type Fen } from '@duet/protocol';

export type AmountResult =
  | { readonly ok: true; readonly fen: Fen }
  | { readonly ok: false; readonly code: AmountError; readonly en: string; readonly zh: string };

export type AmountError = 'empty' | 'format' | 'decimals' | 'zero' | 'over_max';

/** Longest keypad text (9,999,999.99 at most has 10 characters). */
export const AMOUNT_TEXT_MAX = 10;

export function parseAmount(text: string, maxFen: number): AmountResult {
  const s = text.trim();
  if (s === '') return { ok: false, code: 'empty', en: 'Type the amount first', zh: '请先输入金额' };
  const m = /^(\d{1,7})(?:\.(\d*))?$/.exec(s);
  if (m === null)
    return {
      ok: false,
      code: 'format',
      en: 'Not an amount: use digits and one point, like 12.50',
      zh: '金额格式不对：请用数字和一个小数点，如 12.50',
    };
  const frac = m[2] ?? '';
  if (frac.length > 2) return { ok: false, code: 'decimals', en: 'At most two decimals (fen)', zh: '最多两位小数（分）' };
  const fen = Number(m[1]) * 100 + Number(frac.padEnd(2, '0'));
  if (fen <= 0) return { ok: false, code: 'zero', en: 'The amount must be more than zero', zh: '金额必须大于零' };
  if (fen > maxFen) {
    const cap = formatYuan(maxFen as Fen);
    return { ok: false, code: 'over_max', en: `Over the single payment limit of ¥${cap}`, zh: `超过单笔限额 ¥${cap}` };
  }
  return { ok: true, fen: fen as Fen };
}

/** The keypad's text after one key: digits, "00", ".", backspace ("back") and clear. */
export function pressKey(text: string, key: string): string {
  if (key === 'clear') return '';
  if (key === 'back') return text.slice(0, -1);
  const next = text === '0' && /^\d/.test(key) ? key : text === '' && key === '.' ? '0.' : text + key;
  return next.length > AMOUNT_TEXT_MAX ? text : next;
}
