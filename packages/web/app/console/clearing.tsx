/**
 * Clearing: the backlog and the last runs, a run on demand (operator), the flags with their
 * evidence (the signed record, and for a replay the first use), resolving one with a note, and the
 * intake alarms.
 */
import { useState } from 'preact/hooks';
import { formatTime, t, words } from '../shared/i18n.js';
import { ErrorBanner, yuan } from '../shared/ui.js';
import { arr, call, int, intOrNull, obj, type StaffRole, str, strOrNull } from './api.js';
import { Loading, parseIntInput, Section, Tile, useAction, useLoad, when } from './kit.js';

interface Flag {
  readonly id: number;
  readonly terminalId: number;
  readonly sequence: number;
  readonly reason: string;
  readonly en: string;
  readonly zh: string;
  readonly paid: boolean;
  readonly bears: string;
  readonly amount: number;
  readonly holderId: number | null;
  readonly detail: string;
  readonly atS: number;
  readonly resolvedAtS: number | null;
  readonly resolvedBy: string | null;
  readonly resolution: string | null;
}

/** Who bears a flagged payment's cost, and a record's clearing state and path, as people say them. */
const WORDS: Record<string, [string, string]> = {
  loss_reserve: ['the loss reserve', '损失准备金'],
  holder: ['the holder', '持卡人'],
  merchant: ['the merchant', '商户'],
  none: ['no one', '无'],
  pending: ['pending', '待清分'],
  posted: ['posted', '已入账'],
  linked: ['linked to its online approval', '已关联在线授权'],
  refused: ['refused', '已拒绝'],
  offline: ['offline', '离线'],
  online: ['online', '在线'],
};

function say(w: string): string {
  const x = WORDS[w];
  return x === undefined ? w : t(x[0], x[1]);
}

function parseFlag(v: unknown): Flag {
  const o = obj(v, 'flag');
  const reason = str(o.reason, 'reason');
  return {
    id: int(o.id, 'flag id'),
    terminalId: int(o.terminalId, 'terminalId'),
    sequence: int(o.sequence, 'sequence'),
    reason,
    en: strOrNull(o.en) ?? reason,
    zh: strOrNull(o.zh) ?? reason,
    paid: o.paid === true,
    bears: strOrNull(o.bears) ?? '',
    amount: int(o.amount, 'amount'),
    holderId: intOrNull(o.holderId, 'holderId'),
    detail: strOrNull(o.detail) ?? '',
    atS: int(o.at, 'at'),
    resolvedAtS: intOrNull(o.resolvedAt, 'resolvedAt'),
    resolvedBy: strOrNull(o.resolvedBy),
    resolution: strOrNull(o.resolution),
  };
}

function parseStatus(v: unknown) {
  const o = obj(v, 'clearing status');
  const pending = obj(o.pending, 'pending');
  const decided = obj(o.decided, 'decided');
  const openFlags = Object.entries(obj(o.openFlags, 'openFlags')).map(([reason, x]) => ({
    reason,
    count: int(obj(x, 'openFlags').count, 'count'),
    amount: int(obj(x, 'openFlags').amount, 'amount'),
  }));
  const intake = Object.entries(obj(o.intakeAlarms, 'intakeAlarms')).map(([reason, n]) => ({ reason, count: int(n, 'alarms') }));
  return {
    pending: { count: int(pending.count, 'pending.count'), amount: int(pending.amount, 'pending.amount') },
    decided: {
      records: int(decided.records, 'records'),
      posted: int(decided.posted, 'posted'),
      refused: int(decided.refused, 'refused'),
      paidFen: int(decided.paidFen, 'paidFen'),
    },
    openFlags,
    intake,
    gaps: arr(o.gaps, 'gaps').length,
    runs: arr(o.runs, 'runs').map((r) => {
      const x = obj(r, 'run');
      return {
        id: int(x.id, 'run id'),
        finishedAtS: int(x.finishedAt, 'finishedAt'),
        records: int(x.records, 'records'),
        posted: int(x.posted, 'posted'),
        refused: int(x.refused, 'refused'),
        flagged: int(x.flagged, 'flagged'),
        paidFen: int(x.paidFen, 'paidFen'),
      };
    }),
  };
}

export function ClearingPage({ role, flag }: { role: StaffRole; flag: string | undefined }) {
  const flagId = flag === undefined ? undefined : parseIntInput(flag, 1, 2 ** 48);
  if (flag !== undefined)
    return flagId === undefined ? (
      <ErrorBanner error={t('Not a flag number', '不是有效的异常编号')} />
    ) : (
      <FlagDetail id={flagId} role={role} />
    );
  return <ClearingOverview role={role} />;
}

function ClearingOverview({ role }: { role: StaffRole }) {
  const [openOnly, setOpenOnly] = useState(true);
  const status = useLoad(async () => parseStatus(await call('GET', '/v1/clearing/status')), []);
  const flags = useLoad(
    async () =>
      arr(obj(await call('GET', `/v1/clearing/flags?limit=100${openOnly ? '&open=true' : ''}`), 'flags').flags, 'flags').map(parseFlag),
    [openOnly],
  );
  const alarms = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/intake/flags?limit=50'), 'alarms').alarms, 'alarms').map((v) => {
        const o = obj(v, 'alarm');
        return {
          id: int(o.id, 'alarm id'),
          terminalId: int(o.terminalId, 'terminalId'),
          sequence: int(o.sequence, 'sequence'),
          reason: str(o.reason, 'reason'),
          detail: strOrNull(o.detail) ?? '',
          atS: int(o.at, 'at'),
        };
      }),
    [],
  );
  const action = useAction();
  const [ran, setRan] = useState<string | undefined>(undefined);
  const s = status.data;
  return (
    <div class="stack">
      <Section
        title={t('Clearing', '清分')}
        actions={
          role === 'operator_admin' && (
            <button
              type="button"
              class="primary"
              data-testid="clearing-run"
              disabled={action.busy}
              onClick={() =>
                void action.run(async () => {
                  const r = obj(await call('POST', '/v1/clearing/run'), 'run');
                  const n = int(r.records, 'records');
                  setRan(t(`Run finished: ${n} record(s) cleared`, `清分完成：处理 ${n} 条记录`));
                  status.reload();
                  flags.reload();
                })
              }
            >
              {t('Run clearing now', '立即清分')}
            </button>
          )
        }
      >
        <ErrorBanner error={action.error} onClose={action.clear} />
        {ran !== undefined && (
          <p class="notice" data-testid="clearing-ran">
            {ran}
          </p>
        )}
        <Loading loaded={status} />
        {s !== undefined && (
          <div class="tiles" data-testid="clearing-status">
            <Tile label={t('Pending', '待清分')} value={String(s.pending.count)} sub={yuan(s.pending.amount)} />
            <Tile
              label={t('Cleared', '已清分')}
              value={String(s.decided.records)}
              sub={t(`${s.decided.posted} posted, ${s.decided.refused} refused`, `入账 ${s.decided.posted}，拒绝 ${s.decided.refused}`)}
            />
            <Tile
              label={t('Open flags', '未处理异常')}
              value={String(s.openFlags.reduce((n, f) => n + f.count, 0))}
              sub={s.openFlags.map((f) => `${f.reason} ${f.count}`).join(', ')}
              {...(s.openFlags.length > 0 ? { tone: 'bad' as const } : {})}
            />
            <Tile
              label={t('Intake alarms', '上传告警')}
              value={String(s.intake.reduce((n, f) => n + f.count, 0))}
              sub={t(`${s.gaps} chain gap(s)`, `${s.gaps} 处链断点`)}
              {...(s.intake.length > 0 || s.gaps > 0 ? { tone: 'warn' as const } : {})}
            />
          </div>
        )}
        {s !== undefined && s.runs.length > 0 && (
          <table data-testid="clearing-runs">
            <thead>
              <tr>
                <th>{t('Run', '批次')}</th>
                <th>{t('Finished', '完成时间')}</th>
                <th class="num">{t('Records', '记录')}</th>
                <th class="num">{t('Posted', '入账')}</th>
                <th class="num">{t('Refused', '拒绝')}</th>
                <th class="num">{t('Flagged', '异常')}</th>
                <th class="num">{t('Paid', '金额')}</th>
              </tr>
            </thead>
            <tbody>
              {s.runs.map((r) => (
                <tr key={r.id}>
                  <td>{r.id}</td>
                  <td>{formatTime(r.finishedAtS, true)}</td>
                  <td class="num">{r.records}</td>
                  <td class="num">{r.posted}</td>
                  <td class="num">{r.refused}</td>
                  <td class="num">{r.flagged}</td>
                  <td class="num">{yuan(r.paidFen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section
        title={t('Flags', '清分异常')}
        actions={
          <label class="row">
            <input type="checkbox" checked={openOnly} onChange={(e) => setOpenOnly(e.currentTarget.checked)} />
            {t('Open only', '仅未处理')}
          </label>
        }
      >
        <Loading loaded={flags} />
        {flags.data !== undefined &&
          (flags.data.length === 0 ? (
            <p class="muted" data-testid="no-flags">
              {t('No flags', '暂无异常')}
            </p>
          ) : (
            <table data-testid="flags">
              <thead>
                <tr>
                  <th>#</th>
                  <th>{t('Reason', '原因')}</th>
                  <th>{t('Terminal · seq.', '终端 · 序号')}</th>
                  <th>{t('Holder', '持卡人')}</th>
                  <th class="num">{t('Amount', '金额')}</th>
                  <th>{t('Paid by', '承担方')}</th>
                  <th>{t('When', '时间')}</th>
                  <th>{t('State', '状态')}</th>
                </tr>
              </thead>
              <tbody>
                {flags.data.map((f) => (
                  <tr key={f.id} data-flag={f.id}>
                    <td>
                      <a href={`#/clearing/${f.id}`}>{f.id}</a>
                    </td>
                    <td>
                      <span class="badge bad">{f.reason}</span> {words(f)}
                    </td>
                    <td>
                      {f.terminalId} · {f.sequence}
                    </td>
                    <td>{f.holderId === null ? '—' : <a href={`#/holders/${f.holderId}`}>{f.holderId}</a>}</td>
                    <td class="num">{yuan(f.amount)}</td>
                    <td>{f.paid ? say(f.bears) : t('not paid', '未付')}</td>
                    <td>{when(f.atS)}</td>
                    <td>{f.resolvedAtS === null ? t('open', '未处理') : t('resolved', '已处理')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
      </Section>
      <Section title={t('Intake alarms', '上传告警')}>
        <Loading loaded={alarms} />
        {alarms.data !== undefined &&
          (alarms.data.length === 0 ? (
            <p class="muted">{t('No alarms', '暂无告警')}</p>
          ) : (
            <table data-testid="intake-alarms">
              <tbody>
                {alarms.data.map((a) => (
                  <tr key={a.id}>
                    <td>
                      <span class="badge warn">{a.reason}</span>
                    </td>
                    <td>{t(`terminal #${a.terminalId}, record ${a.sequence}`, `终端 #${a.terminalId}，记录 ${a.sequence}`)}</td>
                    <td class="muted">{a.detail}</td>
                    <td>{when(a.atS)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
      </Section>
    </div>
  );
}

/** A record's evidence as the platform decodes it: its fields and its signed bytes. */
function RecordEvidence({ title, record, testid }: { title: string; record: unknown; testid: string }) {
  const o = typeof record === 'object' && record !== null ? (record as Record<string, unknown>) : {};
  const rows: [string, string][] = [
    [t('Terminal', '终端'), String(o.terminalId ?? '—')],
    [t('Sequence', '序号'), String(o.sequence ?? '—')],
    [t('Time', '时间'), typeof o.time === 'number' ? formatTime(o.time, true) : '—'],
    [t('Path', '方式'), typeof o.path === 'string' ? say(o.path) : '—'],
    [t('Amount', '金额'), typeof o.amount === 'number' ? yuan(o.amount) : '—'],
    [t('Merchant', '商户'), String(o.merchantId ?? '—')],
  ];
  return (
    <div class="evidence" data-testid={testid}>
      <h3>{title}</h3>
      <dl class="facts">
        {rows.map(([k, v]) => [<dt key={`k${k}`}>{k}</dt>, <dd key={`v${k}`}>{v}</dd>])}
        {typeof o.undecodable === 'string' && (
          <>
            <dt>{t('Undecodable', '无法解码')}</dt>
            <dd class="bad-text">{o.undecodable}</dd>
          </>
        )}
      </dl>
      <details>
        <summary>{t('Signed bytes (base64)', '签名原文（base64）')}</summary>
        <code class="bytes">{typeof o.bytes === 'string' ? o.bytes : ''}</code>
      </details>
    </div>
  );
}

function FlagDetail({ id, role }: { id: number; role: StaffRole }) {
  const loaded = useLoad(async () => {
    const o = obj(await call('GET', `/v1/clearing/flags/${id}`), 'flag');
    return { flag: parseFlag(o), record: o.record, related: o.related };
  }, [id]);
  const [note, setNote] = useState('');
  const action = useAction();
  const d = loaded.data;
  if (d === undefined) return <Loading loaded={loaded} />;
  const f = d.flag;
  const rel = typeof d.related === 'object' && d.related !== null ? (d.related as Record<string, unknown>) : undefined;
  return (
    <div class="stack" data-testid="flag-detail">
      <p>
        <a href="#/clearing">← {t('Clearing', '清分')}</a>
      </p>
      <Section title={t(`Flag #${f.id}: ${f.en}`, `异常 #${f.id}：${f.zh}`)}>
        <dl class="facts">
          <dt>{t('Reason', '原因')}</dt>
          <dd>
            <span class="badge bad">{f.reason}</span> {words(f)}
          </dd>
          <dt>{t('Amount', '金额')}</dt>
          <dd>{yuan(f.amount)}</dd>
          <dt>{t('Paid', '是否支付')}</dt>
          <dd>{f.paid ? t(`yes, borne by ${say(f.bears)}`, `是，由${say(f.bears)}承担`) : t('no', '否')}</dd>
          <dt>{t('Holder', '持卡人')}</dt>
          <dd>{f.holderId === null ? '—' : <a href={`#/holders/${f.holderId}`}>{f.holderId}</a>}</dd>
          <dt>{t('Detail', '详情')}</dt>
          <dd>{f.detail}</dd>
          <dt>{t('Flagged', '发现时间')}</dt>
          <dd>{when(f.atS)}</dd>
          <dt>{t('State', '状态')}</dt>
          <dd data-testid="flag-state">
            {f.resolvedAtS === null
              ? t('open', '未处理')
              : t(
                  `resolved by ${f.resolvedBy ?? '?'} at ${when(f.resolvedAtS)}: ${f.resolution ?? ''}`,
                  `已由 ${f.resolvedBy ?? '?'} 于 ${when(f.resolvedAtS)} 处理：${f.resolution ?? ''}`,
                )}
          </dd>
        </dl>
      </Section>
      <Section title={t('Evidence', '证据')}>
        <div class="evidence-pair">
          <RecordEvidence title={t('The flagged record', '异常记录')} record={d.record} testid="evidence-record" />
          {rel?.record !== undefined && (
            <RecordEvidence
              title={`${t('First use', '首次使用')} (${say(String(rel.state ?? ''))})`}
              record={rel.record}
              testid="evidence-first-use"
            />
          )}
          {rel?.authorization !== undefined && (
            <div class="evidence" data-testid="evidence-authorization">
              <h3>{t('Online authorization', '在线授权')}</h3>
              <code class="bytes">{JSON.stringify(rel.authorization)}</code>
            </div>
          )}
        </div>
      </Section>
      {role === 'operator_admin' && f.resolvedAtS === null && (
        <Section title={t('Resolve', '处理')}>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              if (note.trim() === '') return;
              void action.run(async () => {
                await call('POST', `/v1/clearing/flags/${f.id}/resolve`, { resolution: note.trim() });
                loaded.reload();
              });
            }}
          >
            <input
              class="grow"
              placeholder={t('What was done (required)', '处理说明（必填）')}
              maxLength={500}
              value={note}
              data-testid="resolve-note"
              onInput={(e) => setNote(e.currentTarget.value)}
            />
            <button type="submit" class="primary" disabled={note.trim() === '' || action.busy} data-testid="resolve">
              {t('Resolve', '标记已处理')}
            </button>
          </form>
          <ErrorBanner error={action.error} onClose={action.clear} />
        </Section>
      )}
    </div>
  );
}
