/**
 * Top-up of the holder's own cash purse (the demo stands in for a bank or WeChat/Alipay payment):
 * an amount keypad with bounds, and an idempotency key per attempt so a retry after a lost answer
 * never tops up twice. Off, with the reason, when the platform does not offer it.
 */
import { fen, parseYuan } from '@duet/protocol';
import { useEffect, useState } from 'preact/hooks';
import { errorWords, PlatformCallError } from '../shared/api.js';
import { t } from '../shared/i18n.js';
import { ErrorBanner, useOnline, yuan } from '../shared/ui.js';
import { type HolderStatus, holderStatus, idempotencyKey, session, TOPUP_MAX_FEN, TOPUP_MIN_FEN, topUp } from './session.js';

const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '.', '0', '⌫'] as const;

/** The keypad text as fen within the top-up bounds, or the words saying why not. */
export function parseTopUp(text: string): number | string {
  if (text === '') return t('Enter an amount', '请输入金额');
  let amount: number;
  try {
    amount = parseYuan(text);
  } catch {
    return t('Enter an amount like 50 or 12.50', '请输入金额，例如 50 或 12.50');
  }
  if (amount < TOPUP_MIN_FEN || amount > TOPUP_MAX_FEN)
    return t(`From ${yuan(TOPUP_MIN_FEN)} to ${yuan(TOPUP_MAX_FEN)}`, `金额须在 ${yuan(TOPUP_MIN_FEN)} 至 ${yuan(TOPUP_MAX_FEN)} 之间`);
  return fen(amount);
}

function press(text: string, key: (typeof KEYS)[number]): string {
  if (key === '⌫') return text.slice(0, -1);
  const next = text + key;
  // Digits, at most one point and two decimals, at most 7 whole digits: nothing else can be typed.
  return /^\d{0,7}(\.\d{0,2})?$/.test(next) ? next.replace(/^0(\d)/, '$1') : text;
}

export function TopUpView({ onSignIn }: { onSignIn: () => void }) {
  const online = useOnline();
  const [status, setStatus] = useState<HolderStatus>();
  const [text, setText] = useState('');
  const [key, setKey] = useState(idempotencyKey);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<{ amount: number; balance: number }>();
  const [needSignIn, setNeedSignIn] = useState(false);
  const [offered, setOffered] = useState(true);
  useEffect(() => {
    const s = session.get();
    if (s === undefined) return setNeedSignIn(true);
    if (!online) return;
    holderStatus(s).then(setStatus, (e: unknown) => {
      if (e instanceof PlatformCallError && e.status === 401) setNeedSignIn(true);
      // A platform without the holder status route offers no top-up either.
      else if (e instanceof PlatformCallError && e.status === 404) setOffered(false);
      else setError(errorWords(e));
    });
  }, [online]);

  if (needSignIn)
    return (
      <div class="notice warn">
        <p>{t('Sign in to top up.', '请登录后充值。')}</p>
        <button type="button" class="primary" onClick={onSignIn}>
          {t('Sign in', '登录')}
        </button>
      </div>
    );
  const cash = status?.purses.find((p) => p.kind === 'cash');
  const amount = parseTopUp(text);
  const unavailable = !offered || (status !== undefined && !status.topUpAvailable);
  async function submit(): Promise<void> {
    const s = session.get();
    if (s === undefined || typeof amount !== 'number') return;
    setBusy(true);
    setError(undefined);
    try {
      const r = await topUp(s, amount, key);
      setDone({ amount, balance: r.balanceFen });
      setText('');
      setKey(idempotencyKey()); // the next top-up is a new one; a retry of this one kept the old key
      setStatus(
        status === undefined
          ? status
          : { ...status, purses: status.purses.map((p) => (p.kind === 'cash' ? { ...p, balanceFen: r.balanceFen } : p)) },
      );
    } catch (e) {
      setError(errorWords(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <section class="topup card">
      <h2>{t('Top up', '充值')}</h2>
      {cash !== undefined && (
        <p>
          {t('Cash balance', '现金余额')}: <strong data-testid="topup-balance">{yuan(cash.balanceFen)}</strong>
        </p>
      )}
      {!online && <p class="notice warn">{t('Offline: top-up needs the network.', '离线：充值需要联网。')}</p>}
      {unavailable && (
        <p class="notice warn" data-testid="topup-unavailable">
          {t(
            'Top-up in the app is not offered on this campus: top up at a service desk or a campus card machine.',
            '本校未开通应用内充值：请到服务台或校园卡自助机充值。',
          )}
        </p>
      )}
      <div class="amount" data-testid="topup-amount">
        ¥{text === '' ? '0' : text}
      </div>
      <p class="muted">
        {typeof amount === 'string' && text !== ''
          ? amount
          : t(`From ${yuan(TOPUP_MIN_FEN)} to ${yuan(TOPUP_MAX_FEN)}`, `金额 ${yuan(TOPUP_MIN_FEN)} 至 ${yuan(TOPUP_MAX_FEN)}`)}
      </p>
      <div class="keypad">
        {KEYS.map((k) => (
          <button
            type="button"
            key={k}
            data-testid={`key-${k === '⌫' ? 'back' : k === '.' ? 'dot' : k}`}
            disabled={unavailable}
            onClick={() => setText(press(text, k))}
          >
            {k}
          </button>
        ))}
      </div>
      <ErrorBanner error={error} />
      {done !== undefined && (
        <p class="notice ok" data-testid="topup-done">
          {t(
            `Topped up ${yuan(done.amount)}. Cash balance ${yuan(done.balance)}.`,
            `已充值 ${yuan(done.amount)}，现金余额 ${yuan(done.balance)}。`,
          )}
        </p>
      )}
      <button
        type="button"
        class="primary wide"
        data-testid="topup-submit"
        disabled={unavailable || !online || busy || typeof amount !== 'number' || status === undefined}
        onClick={() => void submit()}
      >
        {busy
          ? t('Topping up…', '正在充值…')
          : typeof amount === 'number'
            ? t(`Top up ${yuan(amount)}`, `充值 ${yuan(amount)}`)
            : t('Top up', '充值')}
      </button>
    </section>
  );
}
