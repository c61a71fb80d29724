/**
 * Where the money is accounted for: the recovery queue (cases, graduation clearance, collection
 * exports with their CSV), merchant statements per Beijing day with a bar chart, and the ledger
 * audit with its roots.
 */
import { useState } from 'preact/hooks';
import { t, words } from '../shared/i18n.js';
import { ErrorBanner, yuan } from '../shared/ui.js';
import { arr, call, callText, int, intOrNull, obj, type StaffRole, str, strOrNull } from './api.js';
import { idempotencyKey, Loading, Section, Tile, useAction, useLoad, when } from './kit.js';

/** Saves text as a file through a temporary link (the CSV the platform made, byte for byte). */
function saveFile(name: string, text: string, type = 'text/csv;charset=utf-8'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function caseStatusWords(s: string): string {
  const m: Record<string, [string, string]> = {
    open: ['open', '未结'],
    exported: ['sent to collection', '已转催收'],
    repaid: ['repaid', '已还清'],
    closed: ['closed', '已关闭'],
    written_off: ['written off', '已核销'],
  };
  const w = m[s];
  return w === undefined ? s : t(w[0], w[1]);
}

export function RecoveryPage() {
  const cases = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/recovery/cases?limit=100'), 'cases').cases, 'cases').map((v) => {
        const o = obj(v, 'case');
        return {
          id: int(o.id, 'case id'),
          holderId: int(o.holderId, 'holderId'),
          openedAtS: int(o.openedAt, 'openedAt'),
          amountFen: int(o.openedAmountFen, 'openedAmountFen'),
          status: str(o.status, 'status'),
          exportBatch: intOrNull(o.exportBatch, 'exportBatch'),
        };
      }),
    [],
  );
  const clearance = useLoad(async () => {
    const o = obj(await call('GET', '/v1/recovery/clearance?limit=100'), 'clearance');
    const totals = obj(o.totals, 'totals');
    return {
      rows: arr(o.rows, 'rows').map((v) => {
        const x = obj(v, 'row');
        return {
          holderId: int(x.holderId, 'holderId'),
          name: str(x.name, 'name'),
          arrearsFen: int(x.arrearsFen, 'arrearsFen'),
          creditUsedFen: int(x.creditUsedFen, 'creditUsedFen'),
          owedFen: int(x.owedFen, 'owedFen'),
          caseStatus: strOrNull(x.caseStatus),
        };
      }),
      holders: int(totals.holders, 'holders'),
      owedFen: int(totals.owedFen, 'owedFen'),
    };
  }, []);
  const exports = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/recovery/collection-exports'), 'exports').exports, 'exports').map((v) => {
        const o = obj(v, 'export');
        return {
          id: int(o.id, 'export id'),
          createdAtS: int(o.createdAt, 'createdAt'),
          createdBy: str(o.createdBy, 'createdBy'),
          cases: int(o.cases, 'cases'),
          owedFen: int(o.owedTotalFen, 'owedTotalFen'),
        };
      }),
    [],
  );
  const action = useAction();
  return (
    <div class="stack">
      <Section title={t('Arrears cases', '欠款案件')}>
        <Loading loaded={cases} />
        <table data-testid="cases">
          <thead>
            <tr>
              <th>#</th>
              <th>{t('Holder', '持卡人')}</th>
              <th>{t('Opened', '立案时间')}</th>
              <th class="num">{t('Amount', '金额')}</th>
              <th>{t('Status', '状态')}</th>
            </tr>
          </thead>
          <tbody>
            {(cases.data ?? []).map((c) => (
              <tr key={c.id}>
                <td>{c.id}</td>
                <td>
                  <a href={`#/holders/${c.holderId}`}>{c.holderId}</a>
                </td>
                <td>{when(c.openedAtS)}</td>
                <td class="num">{yuan(c.amountFen)}</td>
                <td>
                  {caseStatusWords(c.status)}
                  {c.exportBatch !== null && <span class="muted"> · {t(`export #${c.exportBatch}`, `导出 #${c.exportBatch}`)}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      <Section
        title={t('Graduation clearance', '离校结算')}
        actions={
          <button
            type="button"
            onClick={() => void action.run(async () => saveFile('clearance.csv', await callText('/v1/recovery/clearance?format=csv')))}
          >
            {t('Download CSV', '下载 CSV')}
          </button>
        }
      >
        <Loading loaded={clearance} />
        {clearance.data !== undefined && (
          <>
            <p data-testid="clearance-total">
              {t(
                `${clearance.data.holders} holder(s) owe ${yuan(clearance.data.owedFen)} in all`,
                `共 ${clearance.data.holders} 人欠款 ${yuan(clearance.data.owedFen)}`,
              )}
            </p>
            <table>
              <thead>
                <tr>
                  <th>{t('Holder', '持卡人')}</th>
                  <th>{t('Name', '姓名')}</th>
                  <th class="num">{t('Arrears', '欠款')}</th>
                  <th class="num">{t('Credit used', '已用授信')}</th>
                  <th class="num">{t('Owed', '应还')}</th>
                  <th>{t('Case', '案件')}</th>
                </tr>
              </thead>
              <tbody>
                {clearance.data.rows.map((r) => (
                  <tr key={r.holderId}>
                    <td>
                      <a href={`#/holders/${r.holderId}`}>{r.holderId}</a>
                    </td>
                    <td>{r.name}</td>
                    <td class="num">{yuan(r.arrearsFen)}</td>
                    <td class="num">{yuan(r.creditUsedFen)}</td>
                    <td class="num">{yuan(r.owedFen)}</td>
                    <td>{r.caseStatus === null ? '—' : caseStatusWords(r.caseStatus)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Section>
      <Section
        title={t('Collection exports', '催收导出')}
        actions={
          <button
            type="button"
            class="primary"
            data-testid="export-create"
            disabled={action.busy}
            onClick={() =>
              void action.run(async () => {
                await call('POST', '/v1/recovery/collection-exports', { idempotencyKey: idempotencyKey() });
                exports.reload();
                cases.reload();
              })
            }
          >
            {t('Export overdue cases', '导出逾期案件')}
          </button>
        }
      >
        <ErrorBanner error={action.error} onClose={action.clear} />
        <Loading loaded={exports} />
        {exports.data !== undefined && exports.data.length === 0 && <p class="muted">{t('No exports yet', '尚无导出')}</p>}
        {exports.data !== undefined && exports.data.length > 0 && (
          <table data-testid="exports">
            <tbody>
              {exports.data.map((x) => (
                <tr key={x.id}>
                  <td>#{x.id}</td>
                  <td>{when(x.createdAtS)}</td>
                  <td>{x.createdBy}</td>
                  <td class="num">{t(`${x.cases} case(s)`, `${x.cases} 件`)}</td>
                  <td class="num">{yuan(x.owedFen)}</td>
                  <td>
                    <button
                      type="button"
                      class="link"
                      onClick={() =>
                        void action.run(async () =>
                          saveFile(`collection-${x.id}.csv`, await callText(`/v1/recovery/collection-exports/${x.id}?format=csv`)),
                        )
                      }
                    >
                      CSV
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </div>
  );
}

/** A Beijing calendar day, `days` before today. */
function beijingDay(daysBefore: number): string {
  return new Date(Date.now() + 8 * 3_600_000 - daysBefore * 86_400_000).toISOString().slice(0, 10);
}

interface StatementDay {
  readonly date: string;
  readonly merchantId: number;
  readonly count: number;
  readonly netFen: number;
}

/** The most days the chart draws one bar each for (a quarter); a longer range shows its last days. */
const CHART_DAYS_MAX = 92;

/** Every calendar day from `from` to `to` (YYYY-MM-DD), at most CHART_DAYS_MAX, the latest kept. */
function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let d = end; d >= Date.parse(`${from}T00:00:00Z`) && out.length < CHART_DAYS_MAX; d -= 86_400_000)
    out.push(new Date(d).toISOString().slice(0, 10));
  return out.reverse();
}

function StatementChart({ days, from, to }: { days: readonly StatementDay[]; from: string; to: string }) {
  const byDate = new Map<string, number>(daysBetween(from, to).map((d) => [d, 0]));
  for (const d of days) if (byDate.has(d.date)) byDate.set(d.date, (byDate.get(d.date) ?? 0) + d.netFen);
  const rows = [...byDate.entries()];
  const w = 600;
  const h = 120;
  const max = Math.max(1, ...rows.map(([, v]) => Math.abs(v)));
  const bw = rows.length === 0 ? 0 : w / rows.length;
  return (
    <svg class="chart" viewBox={`0 0 ${w} ${h + 16}`} role="img" aria-label={t('Net per day', '每日净额')} data-testid="statement-chart">
      <line x1={0} y1={h} x2={w} y2={h} class="axis" />
      {rows.map(([date, v], i) => {
        const bh = Math.round((Math.abs(v) / max) * (h - 10));
        return (
          <g key={date}>
            <rect x={i * bw + 2} y={h - bh} width={Math.max(1, bw - 4)} height={bh} class={v < 0 ? 'bar neg' : 'bar'}>
              <title>{`${date} · ${yuan(v)}`}</title>
            </rect>
            {(rows.length <= 16 || i % Math.ceil(rows.length / 12) === 0) && (
              <text x={i * bw + bw / 2} y={h + 13} class="label" text-anchor="middle">
                {date.slice(5)}
              </text>
            )}
          </g>
        );
      })}
    </svg>
  );
}

export function StatementsPage({ role }: { role: StaffRole }) {
  const [from, setFrom] = useState(beijingDay(13));
  const [to, setTo] = useState(beijingDay(0));
  const [merchant, setMerchant] = useState('');
  const valid = /^\d{4}-\d{2}-\d{2}$/.test(from) && /^\d{4}-\d{2}-\d{2}$/.test(to) && from <= to;
  const merchants = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/merchants'), 'merchants').merchants, 'merchants').map((v) => {
        const o = obj(v, 'merchant');
        return { id: int(o.id, 'merchant id'), name: str(o.name, 'merchant name') };
      }),
    [],
  );
  const query = `from=${from}&to=${to}${merchant === '' ? '' : `&merchantId=${merchant}`}`;
  const loaded = useLoad(async () => {
    if (!valid) throw new Error(t('Choose a valid range of days', '请选择有效的日期范围'));
    const o = obj(await call('GET', `/v1/statements/merchants?${query}`), 'statement');
    const totals = obj(o.totals, 'totals');
    const cnt = (x: unknown, f: string) => int(obj(x, f).count, `${f}.count`);
    const fen = (x: unknown, f: string) => int(obj(x, f).fen, `${f}.fen`);
    return {
      days: arr(o.days, 'days').map((v) => {
        const d = obj(v, 'day');
        return {
          date: str(d.date, 'date'),
          merchantId: int(d.merchantId, 'merchantId'),
          online: fen(d.online, 'online'),
          offline: fen(d.offline, 'offline'),
          lossPaid: fen(d.lossPaid, 'lossPaid'),
          reversals: fen(d.reversals, 'reversals'),
          count: cnt(d.online, 'online') + cnt(d.offline, 'offline'),
          netFen: int(d.netFen, 'netFen'),
        };
      }),
      netFen: int(totals.netFen, 'netFen'),
      count: cnt(totals.online, 'online') + cnt(totals.offline, 'offline'),
    };
  }, [query, valid]);
  const action = useAction();
  const name = (id: number): string => merchants.data?.find((m) => m.id === id)?.name ?? `#${id}`;
  return (
    <Section
      title={t('Merchant statements', '商户对账单')}
      actions={
        <div class="row">
          {role !== 'merchant' && (
            <select value={merchant} onChange={(e) => setMerchant(e.currentTarget.value)}>
              <option value="">{t('All merchants', '全部商户')}</option>
              {(merchants.data ?? []).map((m) => (
                <option key={m.id} value={String(m.id)}>
                  {m.name}
                </option>
              ))}
            </select>
          )}
          <input type="date" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
          <input type="date" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
          <button
            type="button"
            disabled={!valid}
            onClick={() =>
              void action.run(async () =>
                saveFile(`statement-${from}-${to}.csv`, await callText(`/v1/statements/merchants?${query}&format=csv`)),
              )
            }
          >
            CSV
          </button>
        </div>
      }
    >
      <ErrorBanner error={action.error} onClose={action.clear} />
      <Loading loaded={loaded} />
      {loaded.data !== undefined && (
        <div class="stack" data-testid="statement">
          <div class="tiles">
            <Tile label={t('Payments', '笔数')} value={String(loaded.data.count)} />
            <Tile label={t('Net payable', '应结净额')} value={yuan(loaded.data.netFen)} testid="statement-net" />
          </div>
          <StatementChart days={loaded.data.days} from={from} to={to} />
          <table data-testid="statement-days">
            <thead>
              <tr>
                <th>{t('Day', '日期')}</th>
                <th>{t('Merchant', '商户')}</th>
                <th class="num">{t('Online', '在线')}</th>
                <th class="num">{t('Offline', '离线')}</th>
                <th class="num">{t('Loss paid', '损失赔付')}</th>
                <th class="num">{t('Reversals', '冲正')}</th>
                <th class="num">{t('Net', '净额')}</th>
              </tr>
            </thead>
            <tbody>
              {loaded.data.days.map((d) => (
                <tr key={`${d.date}-${d.merchantId}`} data-merchant={d.merchantId}>
                  <td>{d.date}</td>
                  <td>{name(d.merchantId)}</td>
                  <td class="num">{yuan(d.online)}</td>
                  <td class="num">{yuan(d.offline)}</td>
                  <td class="num">{yuan(d.lossPaid)}</td>
                  <td class="num">{yuan(d.reversals)}</td>
                  <td class="num">{yuan(d.netFen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

/** The audit's checks in people's words (the platform names them by id). */
const CHECK_WORDS: Record<string, [string, string]> = {
  entries_balance: ['Every entry balances', '每笔分录借贷平衡'],
  balances_match_postings: ['Every balance equals the sum of its postings', '每个账户余额等于其过账合计'],
  chain_recomputes: ['The hash chain recomputes', '哈希链可复算'],
  entries_sealed: ['Every entry past the grace period is sealed', '超过宽限期的分录均已封存'],
  roots_verify: ['Every signed root verifies', '每个签名根均验证通过'],
};

export function LedgerPage({ role }: { role: StaffRole }) {
  const audit = useLoad(async () => {
    const o = obj(await call('GET', '/v1/ledger/audit'), 'audit');
    const counts = obj(o.counts, 'counts');
    const brk = o.break === null || o.break === undefined ? null : obj(o.break, 'break');
    return {
      ok: o.ok === true,
      auditedAtS: int(o.auditedAtS, 'auditedAtS'),
      counts: {
        entries: int(counts.entries, 'entries'),
        sealed: int(counts.sealed, 'sealed'),
        roots: int(counts.roots, 'roots'),
        witnessed: int(counts.witnessedRoots, 'witnessedRoots'),
      },
      checks: arr(o.checks, 'checks').map((v) => {
        const c = obj(v, 'check');
        return { check: str(c.check, 'check'), status: str(c.status, 'status') };
      }),
      break: brk === null ? null : { en: strOrNull(brk.en) ?? String(brk.code), zh: strOrNull(brk.zh) ?? String(brk.code) },
      warnings: arr(o.warnings, 'warnings').map((v) => {
        const w = obj(v, 'warning');
        return { code: str(w.code, 'code'), en: strOrNull(w.en) ?? '', zh: strOrNull(w.zh) ?? '', detail: strOrNull(w.detail) ?? '' };
      }),
    };
  }, []);
  const roots = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/ledger/roots'), 'roots').roots, 'roots').map((v) => {
        const r = obj(v, 'root');
        return {
          id: int(r.id, 'root id'),
          first: int(r.firstPosition, 'firstPosition'),
          last: int(r.lastPosition, 'lastPosition'),
          signedAtS: int(r.signedAt, 'signedAt'),
          rootHash: str(r.rootHash, 'rootHash'),
          witnessed: r.witness !== null && r.witness !== undefined,
        };
      }),
    [],
  );
  const seal = useAction();
  const a = audit.data;
  return (
    <div class="stack">
      <Section
        title={t('Ledger audit', '账本审计')}
        actions={
          <div class="row">
            {role === 'operator_admin' && (
              <button
                type="button"
                data-testid="close-root"
                disabled={seal.busy}
                onClick={() =>
                  void seal.run(async () => {
                    await call('POST', '/v1/ledger/roots', {});
                    roots.reload();
                    audit.reload();
                  })
                }
              >
                {t('Seal and sign a root now', '立即封存并签名')}
              </button>
            )}
            <button type="button" onClick={audit.reload} disabled={audit.loading}>
              {t('Audit again', '重新审计')}
            </button>
          </div>
        }
      >
        <ErrorBanner error={seal.error} onClose={seal.clear} />
        <Loading loaded={audit} />
        {a !== undefined && (
          <div class="stack" data-testid="audit">
            <p class={a.ok ? 'notice' : 'error'} data-testid="audit-result">
              {a.ok ? t('All checks pass', '全部检查通过') : t('The audit found a break', '审计发现断点')} · {when(a.auditedAtS)}
            </p>
            <ul class="checks">
              {a.checks.map((c) => {
                const w = CHECK_WORDS[c.check];
                return (
                  <li key={c.check} class={c.status} data-check={c.check} data-status={c.status}>
                    <span class={c.status === 'passed' ? 'check ok' : c.status === 'failed' ? 'check bad' : 'check'}>
                      {c.status === 'passed' ? '✓' : c.status === 'failed' ? '✗' : '–'}
                    </span>{' '}
                    {w === undefined ? c.check : t(w[0], w[1])}
                    {c.status === 'not_run' && <span class="muted"> ({t('not run', '未执行')})</span>}
                  </li>
                );
              })}
            </ul>
            {a.break !== null && <ErrorBanner error={words(a.break)} />}
            {a.warnings.map((w) => (
              <p key={w.code} class="warn-text">
                ⚠ {words(w)} {w.detail !== '' && <span class="muted">({w.detail})</span>}
              </p>
            ))}
            <div class="tiles">
              <Tile label={t('Entries', '分录')} value={String(a.counts.entries)} />
              <Tile label={t('Sealed', '已封存')} value={String(a.counts.sealed)} />
              <Tile
                label={t('Signed roots', '签名根')}
                value={String(a.counts.roots)}
                sub={t(`${a.counts.witnessed} countersigned`, `${a.counts.witnessed} 个已副署`)}
              />
            </div>
          </div>
        )}
      </Section>
      <Section title={t('Signed roots', '签名根')}>
        <Loading loaded={roots} />
        {roots.data !== undefined &&
          (roots.data.length === 0 ? (
            <p class="muted">{t('No root signed yet', '尚无签名根')}</p>
          ) : (
            <table data-testid="roots">
              <thead>
                <tr>
                  <th>#</th>
                  <th>{t('Positions', '位置')}</th>
                  <th>{t('Signed', '签名时间')}</th>
                  <th>{t('Root hash', '根哈希')}</th>
                  <th>{t('Witness', '见证')}</th>
                </tr>
              </thead>
              <tbody>
                {roots.data.map((r) => (
                  <tr key={r.id}>
                    <td>{r.id}</td>
                    <td>
                      {r.first}–{r.last}
                    </td>
                    <td>{when(r.signedAtS)}</td>
                    <td>
                      <code>{r.rootHash.slice(0, 16)}…</code>
                    </td>
                    <td>{r.witnessed ? t('countersigned', '已副署') : t('not yet', '未副署')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
      </Section>
    </div>
  );
}
