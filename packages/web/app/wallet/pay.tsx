/**
 * The pay screen: the current offline code as a QR that makes a fresh code every 30 s and on tap,
 * what the credential allows offline and when it ends; it renews the credential by itself when
 * online and due, and says plainly when no code can be shown.
 */
import type { WalletStatus } from '@duet/wallet';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { PlatformCallError } from '../shared/api.js';
import { formatTime, t, words } from '../shared/i18n.js';
import { ErrorBanner, useOnline, yuan } from '../shared/ui.js';
import { drawQr } from './qr-canvas.js';
import { noteOfflineSpent } from './history.js';
import { history, type Opened, renew, session, why } from './session.js';
import { offlineSpent } from './spent.js';

/** A code is redrawn this often; terminals accept a code for a while longer (the freshness window). */
export const CODE_REFRESH_MS = 30_000;
/** Automatic renewal is tried at most this often, so a failing platform is not hammered. */
const RENEW_RETRY_MS = 60_000;
const TICK_MS = 1_000;

interface Shown {
  readonly text: string;
  readonly counter: number;
  readonly madeMs: number;
}

declare global {
  interface Window {
    /** For the benchmark: makes a fresh code, redraws the QR, and answers the time taken in ms. */
    __duetWalletRefresh?: () => Promise<number>;
  }
}

function leftWords(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return t(`${d} d ${h} h`, `${d} 天 ${h} 小时`);
  if (h > 0) return t(`${h} h ${m} min`, `${h} 小时 ${m} 分`);
  return t(`${m} min`, `${m} 分钟`);
}

function useRenewal(opened: Opened, status: WalletStatus, online: boolean, onChange: () => void) {
  const [state, setState] = useState<{ busy: boolean; error?: string; signIn?: boolean; lastMs: number }>({ busy: false, lastMs: 0 });
  useEffect(() => {
    const s = session.get();
    if (!online || !status.needsRenewal || state.busy || s === undefined || state.signIn === true) return;
    if (Date.now() - state.lastMs < RENEW_RETRY_MS) return;
    setState({ busy: true, lastMs: Date.now() });
    renew(opened, s).then(
      () => {
        setState({ busy: false, lastMs: Date.now() });
        onChange();
      },
      (e: unknown) => {
        const signIn = e instanceof Error && e.cause instanceof PlatformCallError && e.cause.status === 401;
        setState({ busy: false, lastMs: Date.now(), error: why(e), signIn });
      },
    );
  });
  return { ...state, signIn: state.signIn === true || session.get() === undefined };
}

export function PayView({ opened, onSignIn }: { opened: Opened; onSignIn: () => void }) {
  const online = useOnline();
  const [, setNow] = useState(Date.now());
  const [shown, setShown] = useState<Shown>();
  const [error, setError] = useState<string>();
  const canvas = useRef<HTMLCanvasElement>(null);
  const status = opened.wallet.status();
  const renewal = useRenewal(opened, status, online, () => setNow(Date.now()));
  const serial = status.credential?.serial;
  // The "offline limit left" figure follows the history whenever the page is online.
  useEffect(() => {
    const s = session.get();
    if (!online || s === undefined || serial === undefined) return;
    history(s).then(
      (rows) => {
        noteOfflineSpent(opened, rows);
        setNow(Date.now());
      },
      () => undefined, // the figure then says it is not synced
    );
  }, [online, serial, opened]);

  const refresh = useCallback(async (): Promise<void> => {
    try {
      const c = await opened.wallet.nextCode();
      if (canvas.current !== null) drawQr(canvas.current, c.text);
      setShown({ text: c.text, counter: c.code.counter, madeMs: Date.now() });
      setError(undefined);
    } catch (e) {
      setShown(undefined);
      setError(why(e));
    }
  }, [opened]);

  useLayoutEffect(() => {
    if (shown !== undefined && canvas.current !== null && canvas.current.dataset.drawn !== shown.text) drawQr(canvas.current, shown.text);
  });

  useEffect(() => {
    window.__duetWalletRefresh = async () => {
      const t0 = performance.now();
      await refresh();
      return performance.now() - t0;
    };
    return () => {
      delete window.__duetWalletRefresh;
    };
  }, [refresh]);

  // One clock for the countdown, the automatic refresh and the status figures.
  useEffect(() => {
    const tick = (): void => setNow(Date.now());
    const id = setInterval(tick, TICK_MS);
    document.addEventListener('visibilitychange', tick);
    return () => {
      clearInterval(id);
      document.removeEventListener('visibilitychange', tick);
    };
  }, []);
  const canMake = status.canMakeCodes;
  const ageMs = shown === undefined ? Number.POSITIVE_INFINITY : Date.now() - shown.madeMs;
  useEffect(() => {
    // A hidden page makes no codes (each one spends a counter); it catches up when shown again.
    if (canMake && ageMs >= CODE_REFRESH_MS && document.visibilityState === 'visible') void refresh();
    else if (!canMake && shown !== undefined) setShown(undefined);
  });

  const c = status.credential;
  const spent = c === undefined ? undefined : offlineSpent(c.serial);
  return (
    <section class="pay">
      {!online && (
        <div class="notice warn" data-testid="wallet-offline">
          {canMake ? t('Offline — codes still work', '离线 — 付款码仍可使用') : t('Offline', '离线')}
        </div>
      )}
      {canMake ? (
        <div class="code card">
          <canvas
            ref={canvas}
            class="qr"
            data-testid="wallet-qr"
            data-code={shown?.text ?? ''}
            data-counter={shown?.counter ?? ''}
            title={t('Tap for a new code', '点击换一个码')}
            onClick={() => void refresh()}
          />
          {shown !== undefined && (
            <p class="muted" data-testid="wallet-ready">
              {t(
                `New code in ${Math.max(0, Math.ceil((CODE_REFRESH_MS - ageMs) / 1000))} s · tap the code for a new one`,
                `${Math.max(0, Math.ceil((CODE_REFRESH_MS - ageMs) / 1000))} 秒后换码 · 点击二维码立即换码`,
              )}
            </p>
          )}
        </div>
      ) : (
        <NoCode status={status} online={online} renewing={renewal.busy} signIn={renewal.signIn} onSignIn={onSignIn} />
      )}
      <ErrorBanner error={error ?? (canMake ? undefined : renewal.error)} />
      {c !== undefined && (
        <dl class="figures card">
          <dt>{t('Offline limit left', '离线额度剩余')}</dt>
          <dd data-testid="wallet-limit">
            {yuan(Math.max(0, c.limits.offlineTotal - (spent ?? 0)))} / {yuan(c.limits.offlineTotal)}
            <small class="muted">
              {' '}
              {spent === undefined ? t('(payments not synced yet)', '（尚未同步账单）') : t('(as of the last sync)', '（截至上次同步）')}
            </small>
          </dd>
          <dt>{t('Per payment', '单笔上限')}</dt>
          <dd>{yuan(c.limits.perPayment)}</dd>
          <dt>{t('Credential expires', '凭证到期')}</dt>
          <dd data-testid="wallet-expiry">
            {formatTime(c.notAfter, true)} (
            {c.secondsLeft > 0 ? t(`in ${leftWords(c.secondsLeft)}`, `剩 ${leftWords(c.secondsLeft)}`) : t('expired', '已过期')})
          </dd>
          <dt>{t('Status', '状态')}</dt>
          <dd data-testid="wallet-status">{renewal.busy ? t('Renewing the credential…', '正在更新凭证…') : words(status.reasonWords)}</dd>
        </dl>
      )}
    </section>
  );
}

function NoCode(p: { status: WalletStatus; online: boolean; renewing: boolean; signIn: boolean; onSignIn: () => void }) {
  const expired = p.status.reason === 'credential_expired' || p.status.reason === 'no_credential';
  return (
    <div class="notice bad" data-testid={expired ? 'wallet-expired' : 'wallet-no-code'}>
      <p>
        {expired && !p.online
          ? t(
              'Your payment credential has expired and this phone is offline: no payment code can be shown. Connect to the network to renew it.',
              '付款凭证已过期且手机处于离线状态，无法显示付款码。请联网以更新凭证。',
            )
          : words(p.status.reasonWords)}
      </p>
      {p.online && p.renewing && <p>{t('Renewing the credential…', '正在更新凭证…')}</p>}
      {p.online && !p.renewing && p.signIn && (
        <button type="button" class="primary" data-testid="wallet-resignin" onClick={p.onSignIn}>
          {t('Sign in to renew', '登录以更新凭证')}
        </button>
      )}
    </div>
  );
}
