/**
 * History: payments a terminal uploaded that clearing has not decided (pending), ledger entries
 * (pending or settled), newest first. It also records what was spent offline under the current
 * credential, for the "offline limit left" figure on the pay screen.
 */
import { useEffect, useState } from 'preact/hooks';
import { errorWords, isUnreachable, PlatformCallError } from '../shared/api.js';
import { formatTime, t } from '../shared/i18n.js';
import { ErrorBanner, useOnline, yuan } from '../shared/ui.js';
import { type HistoryRow, history, type Opened, session } from './session.js';
import { setOfflineSpent } from './spent.js';

const OFFLINE_KINDS = new Set(['offline_payment', 'loss_payment']);

/** Keeps what the history says was spent offline since the current credential began (for "offline limit left"). */
export function noteOfflineSpent(opened: Opened, rows: readonly HistoryRow[]): void {
  const c = opened.wallet.status().credential;
  if (c === undefined) return;
  const spent = rows.filter((x) => OFFLINE_KINDS.has(x.kind) && x.time >= c.notBefore).reduce((a, x) => a + Math.max(0, -x.amountFen), 0);
  setOfflineSpent(c.serial, spent);
}

function kindWords(kind: string): string {
  switch (kind) {
    case 'offline_payment':
    case 'loss_payment':
      return t('Offline payment', '离线支付');
    case 'online_payment':
      return t('Online payment', '在线支付');
    case 'topup':
    case 'top_up':
      return t('Top-up', '充值');
    case 'subsidy':
      return t('Subsidy', '补贴');
    default:
      return kind.replace(/_/g, ' ');
  }
}

export function HistoryView({ opened, onSignIn }: { opened: Opened; onSignIn: () => void }) {
  const online = useOnline();
  const [rows, setRows] = useState<HistoryRow[]>();
  const [error, setError] = useState<string>();
  const [needSignIn, setNeedSignIn] = useState(false);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const s = session.get();
    if (s === undefined) {
      setNeedSignIn(true);
      return;
    }
    if (!online) return;
    history(s).then(
      (r) => {
        setRows(r);
        setError(undefined);
        noteOfflineSpent(opened, r);
      },
      (e: unknown) => {
        if (e instanceof PlatformCallError && e.status === 401) setNeedSignIn(true);
        else if (!isUnreachable(e)) setError(errorWords(e));
      },
    );
  }, [online, reload, opened]);

  if (needSignIn)
    return (
      <div class="notice warn">
        <p>{t('Sign in to see your history.', '请登录查看账单。')}</p>
        <button type="button" class="primary" onClick={onSignIn}>
          {t('Sign in', '登录')}
        </button>
      </div>
    );
  return (
    <section class="history card">
      <div class="row">
        <h2>{t('History', '账单')}</h2>
        <button type="button" data-testid="history-reload" disabled={!online} onClick={() => setReload(reload + 1)}>
          {t('Refresh', '刷新')}
        </button>
      </div>
      {!online && <p class="notice warn">{t('Offline: history shows when the network is back.', '离线：联网后显示账单。')}</p>}
      <ErrorBanner error={error} />
      {rows !== undefined && rows.length === 0 && <p class="muted">{t('Nothing yet.', '暂无记录。')}</p>}
      <ul class="rows">
        {rows?.map((r) => (
          <li key={r.key} data-testid="history-row" data-state={r.state} data-amount={r.amountFen}>
            <span class="when">{formatTime(r.time, true)}</span>
            <span class="what">{kindWords(r.kind)}</span>
            <span class={r.amountFen < 0 ? 'amount out' : 'amount in'}>
              {r.amountFen < 0 ? `−${yuan(-r.amountFen)}` : `+${yuan(r.amountFen)}`}
            </span>
            <span class={r.state === 'pending' ? 'badge warn' : 'badge ok'}>
              {r.state === 'pending' ? t('Pending', '待结算') : t('Settled', '已结算')}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
