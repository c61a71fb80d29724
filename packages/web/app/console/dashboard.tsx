/**
 * The live dashboard: GET /v1/dashboard every 5 s. Payments per minute as a hand-drawn SVG bar
 * chart, terminals with their online dot and last sync, the figures as tiles, and the alerts, each
 * leading to its flag's evidence.
 */
import { useEffect, useState } from 'preact/hooks';
import { formatTime, t, words } from '../shared/i18n.js';
import { yuan } from '../shared/ui.js';
import { arr, call, epochS, int, intOrNull, obj, type StaffRole, str, strOrNull } from './api.js';
import { ago, Dot, Loading, Section, Tile, useLoad } from './kit.js';

/** How often the dashboard asks again (the issue asks for a live view; 5 s keeps the load small). */
export const DASHBOARD_REFRESH_MS = 5_000;
/** Most minutes and terminals drawn, whatever the platform sends. */
const MINUTES_MAX = 120;
const TERMINALS_MAX = 500;
const ALERTS_MAX = 50;

interface Minute {
  readonly minuteS: number;
  readonly count: number;
  readonly amountFen: number;
}

export interface DashboardTerminal {
  readonly id: number;
  readonly merchant: string;
  readonly location: string;
  readonly status: string;
  readonly online: boolean;
  readonly lastSeenS: number | null;
  readonly lastSyncS: number | null;
  readonly waiting: number;
}

interface Alert {
  readonly id: string;
  readonly kind: string;
  readonly atS: number | null;
  readonly terminalId: number | null;
  readonly holderId: number | null;
  readonly amountFen: number | null;
  readonly en: string;
  readonly zh: string;
}

export interface Dashboard {
  readonly atS: number | null;
  readonly perMinute: readonly Minute[];
  readonly today: { readonly count: number; readonly amountFen: number };
  readonly terminals: readonly DashboardTerminal[];
  readonly online: number;
  readonly offline: number;
  readonly recordsWaiting: number;
  readonly clearing: {
    readonly pending: number;
    readonly lastRunS: number | null;
    readonly openFlags: number;
    readonly clearedToday: number;
  };
  readonly arrears: { readonly holders: number; readonly amountFen: number };
  readonly alerts: readonly Alert[];
}

export function parseTerminal(v: unknown): DashboardTerminal {
  const o = obj(v, 'terminals[]');
  return {
    id: int(o.id, 'terminal id'),
    merchant: strOrNull(o.merchant) ?? '',
    location: strOrNull(o.location) ?? '',
    status: str(o.status, 'terminal status'),
    online: o.online === true,
    lastSeenS: epochS(o.lastSeenAt, 'lastSeenAt'),
    lastSyncS: epochS(o.lastSyncAt, 'lastSyncAt'),
    waiting: intOrNull(o.waiting, 'waiting') ?? 0,
  };
}

export function parseDashboard(v: unknown): Dashboard {
  const o = obj(v, 'dashboard');
  const today = obj(o.today, 'today');
  const clearing = obj(o.clearing, 'clearing');
  const arrears = obj(o.arrears, 'arrears');
  return {
    atS: epochS(o.at, 'at'),
    perMinute: arr(o.paymentsPerMinute, 'paymentsPerMinute')
      .slice(-MINUTES_MAX)
      .map((m) => {
        const x = obj(m, 'paymentsPerMinute[]');
        return { minuteS: epochS(x.minute, 'minute') ?? 0, count: int(x.count, 'count'), amountFen: int(x.amountFen, 'amountFen') };
      }),
    today: { count: int(today.count, 'today.count'), amountFen: int(today.amountFen, 'today.amountFen') },
    terminals: arr(o.terminals, 'terminals').slice(0, TERMINALS_MAX).map(parseTerminal),
    online: int(o.terminalsOnline, 'terminalsOnline'),
    offline: int(o.terminalsOffline, 'terminalsOffline'),
    recordsWaiting: int(o.recordsWaiting, 'recordsWaiting'),
    clearing: {
      pending: int(clearing.pending, 'clearing.pending'),
      lastRunS: epochS(clearing.lastRunAt, 'clearing.lastRunAt'),
      openFlags: int(clearing.openFlags, 'clearing.openFlags'),
      clearedToday: intOrNull(clearing.clearedToday, 'clearing.clearedToday') ?? 0,
    },
    arrears: { holders: int(arrears.holders, 'arrears.holders'), amountFen: int(arrears.amountFen, 'arrears.amountFen') },
    alerts: arr(o.alerts, 'alerts')
      .slice(0, ALERTS_MAX)
      .map((a) => {
        const x = obj(a, 'alerts[]');
        const kind = str(x.kind, 'alert kind');
        return {
          id: str(x.id, 'alert id'),
          kind,
          atS: epochS(x.at, 'alert at'),
          terminalId: intOrNull(x.terminalId, 'alert terminalId'),
          holderId: intOrNull(x.holderId, 'alert holderId'),
          amountFen: intOrNull(x.amountFen, 'alert amountFen'),
          en: strOrNull(x.en) ?? kind,
          zh: strOrNull(x.zh) ?? kind,
        };
      }),
  };
}

/** Payments per minute as bars; the tallest bar fills the height, an empty hour is a flat line. */
export function MinuteChart({ minutes }: { minutes: readonly Minute[] }) {
  const w = 600;
  const h = 140;
  const pad = 18;
  const max = Math.max(1, ...minutes.map((m) => m.count));
  const bw = minutes.length === 0 ? 0 : (w - pad) / minutes.length;
  const first = minutes[0];
  const last = minutes[minutes.length - 1];
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${w} ${h + 16}`}
      role="img"
      aria-label={t('Payments per minute', '每分钟支付笔数')}
      data-testid="ppm-chart"
    >
      <line x1={pad} y1={h} x2={w} y2={h} class="axis" />
      <text x={0} y={10} class="label">
        {max}
      </text>
      {minutes.map((m, i) => {
        const bh = Math.round((m.count / max) * (h - 14));
        return (
          <rect key={m.minuteS} x={pad + i * bw + 1} y={h - bh} width={Math.max(1, bw - 2)} height={bh} class="bar">
            <title>{`${formatTime(m.minuteS)} · ${m.count} · ${yuan(m.amountFen)}`}</title>
          </rect>
        );
      })}
      {first !== undefined && (
        <text x={pad} y={h + 14} class="label">
          {formatTime(first.minuteS).slice(0, 5)}
        </text>
      )}
      {last !== undefined && (
        <text x={w} y={h + 14} class="label" text-anchor="end">
          {formatTime(last.minuteS).slice(0, 5)}
        </text>
      )}
    </svg>
  );
}

/** Re-renders every few seconds so "12 s ago" stays true between refreshes. */
function useNow(everyMs: number): number {
  const [now, set] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => set(Date.now()), everyMs);
    return () => clearInterval(id);
  }, [everyMs]);
  return now;
}

export function DashboardPage({ role }: { role: StaffRole }) {
  const loaded = useLoad(async () => parseDashboard(await call('GET', '/v1/dashboard')), [], DASHBOARD_REFRESH_MS);
  const now = useNow(1_000);
  const d = loaded.data;
  if (d === undefined) return <Loading loaded={loaded} />;
  const lastHour = d.perMinute.reduce((n, m) => n + m.count, 0);
  return (
    <div class="stack" data-testid="dashboard">
      {loaded.error !== undefined && <Loading loaded={loaded} />}
      <div class="tiles">
        <Tile testid="tile-today" label={t('Payments today', '今日支付')} value={String(d.today.count)} sub={yuan(d.today.amountFen)} />
        <Tile
          testid="tile-terminals"
          label={t('Terminals online', '在线终端')}
          value={`${d.online} / ${d.online + d.offline}`}
          sub={t(`${d.offline} offline`, `${d.offline} 台离线`)}
          {...(d.offline > 0 ? { tone: 'warn' as const } : {})}
        />
        <Tile
          testid="tile-waiting"
          label={t('Records waiting for upload', '待上传记录')}
          value={String(d.recordsWaiting)}
          {...(d.recordsWaiting > 0 ? { tone: 'warn' as const } : {})}
        />
        <Tile
          testid="tile-clearing"
          label={t('Clearing pending', '待清分')}
          value={String(d.clearing.pending)}
          sub={t(`last run ${ago(d.clearing.lastRunS, now)}`, `上次清分 ${ago(d.clearing.lastRunS, now)}`)}
        />
        <Tile
          testid="tile-flags"
          label={t('Open flags', '未处理异常')}
          value={String(d.clearing.openFlags)}
          sub={t(`${d.clearing.clearedToday} cleared today`, `今日已清分 ${d.clearing.clearedToday} 笔`)}
          {...(d.clearing.openFlags > 0 ? { tone: 'bad' as const } : {})}
        />
        {role !== 'merchant' && (
          <Tile
            testid="tile-arrears"
            label={t('Arrears', '欠款')}
            value={yuan(d.arrears.amountFen)}
            sub={t(`${d.arrears.holders} holders`, `${d.arrears.holders} 人`)}
            {...(d.arrears.holders > 0 ? { tone: 'warn' as const } : {})}
          />
        )}
      </div>
      <Section title={t(`Payments per minute (last hour: ${lastHour})`, `每分钟支付笔数（近一小时 ${lastHour} 笔）`)}>
        <MinuteChart minutes={d.perMinute} />
      </Section>
      <Section title={t('Alerts', '告警')}>
        {d.alerts.length === 0 ? (
          <p class="muted" data-testid="no-alerts">
            {t('No open alerts', '暂无告警')}
          </p>
        ) : (
          <ul class="alerts" data-testid="alerts">
            {d.alerts.map((a) => {
              const flagId = /^clearing-(\d{1,15})$/.exec(a.id)?.[1];
              return (
                <li key={a.id}>
                  <span class="badge bad">{a.kind}</span> {words(a)}
                  {a.terminalId !== null && <span class="muted"> · {t(`terminal #${a.terminalId}`, `终端 #${a.terminalId}`)}</span>}
                  {a.amountFen !== null && <span class="muted"> · {yuan(a.amountFen)}</span>}
                  <span class="muted"> · {ago(a.atS, now)}</span>{' '}
                  {flagId !== undefined && role !== 'merchant' && <a href={`#/clearing/${flagId}`}>{t('Evidence', '证据')}</a>}
                </li>
              );
            })}
          </ul>
        )}
      </Section>
      <Section title={t('Terminals', '终端')}>
        <TerminalTable terminals={d.terminals} now={now} />
      </Section>
      <p class="muted" data-testid="dashboard-ready">
        {t(`Updated ${ago(d.atS, now)}, every 5 s`, `更新于 ${ago(d.atS, now)}，每 5 秒刷新`)}
      </p>
    </div>
  );
}

export function statusWords(s: string): string {
  return s === 'active'
    ? t('active', '已激活')
    : s === 'pending'
      ? t('waiting for activation', '待激活')
      : s === 'revoked'
        ? t('revoked', '已吊销')
        : s;
}

function TerminalTable({ terminals, now }: { terminals: readonly DashboardTerminal[]; now: number }) {
  if (terminals.length === 0) return <p class="muted">{t('No terminals', '暂无终端')}</p>;
  return (
    <table data-testid="dash-terminals">
      <thead>
        <tr>
          <th>#</th>
          <th>{t('Merchant', '商户')}</th>
          <th>{t('Location', '位置')}</th>
          <th>{t('Status', '状态')}</th>
          <th>{t('Last seen', '最近在线')}</th>
          <th>{t('Last sync', '最近同步')}</th>
          <th class="num">{t('Waiting', '待上传')}</th>
        </tr>
      </thead>
      <tbody>
        {terminals.map((x) => (
          <tr key={x.id} data-terminal={x.id}>
            <td>
              <Dot on={x.online} /> {x.id}
            </td>
            <td>{x.merchant}</td>
            <td>{x.location}</td>
            <td>{statusWords(x.status)}</td>
            <td>{ago(x.lastSeenS, now)}</td>
            <td>{ago(x.lastSyncS, now)}</td>
            <td class="num">{x.waiting}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
