/**
 * Holders: the list with a search by number or name, and one holder's agreement, purses, devices,
 * credentials and history, with the actions the role may take (block, unblock, report a lost card,
 * top up for the operator; subsidy and credit line for school finance).
 */
import { useState } from 'preact/hooks';
import { t } from '../shared/i18n.js';
import { ErrorBanner, yuan } from '../shared/ui.js';
import { arr, call, epochS, int, intOrNull, obj, type StaffRole, str, strOrNull } from './api.js';
import { Confirm, idempotencyKey, Loading, parseIntInput, parseYuanInput, Section, useAction, useLoad, when } from './kit.js';

const HOLDERS_PAGE = 100;
const HOLDER_ID_MAX = 2 ** 48 - 1;

interface HolderRow {
  readonly id: number;
  readonly name: string;
  readonly role: string;
  readonly campus: number;
  readonly status: string;
  readonly blockReason: string | null;
}

function parseHolder(v: unknown): HolderRow {
  const o = obj(v, 'holder');
  return {
    id: int(o.id, 'holder id'),
    name: str(o.name, 'holder name'),
    role: str(o.role, 'holder role'),
    campus: int(o.campus, 'campus'),
    status: str(o.status, 'holder status'),
    blockReason: strOrNull(o.blockReason),
  };
}

export function holderStatusWords(s: string): string {
  if (s === 'graduated') return t('graduated', '已离校');
  return s === 'active' ? t('active', '正常') : s === 'blocked' ? t('blocked', '已冻结') : s;
}

function holderRoleWords(r: string): string {
  return r === 'student' ? t('student', '学生') : r === 'teacher' ? t('teacher', '教师') : r === 'staff' ? t('staff', '职工') : r;
}

export function HoldersPage() {
  const [status, setStatus] = useState<'' | 'active' | 'blocked' | 'graduated'>('');
  const [offset, setOffset] = useState(0);
  const [query, setQuery] = useState('');
  const loaded = useLoad(async () => {
    const q = `/v1/holders?limit=${HOLDERS_PAGE}&offset=${offset}${status === '' ? '' : `&status=${status}`}`;
    return arr(obj(await call('GET', q), 'holders').holders, 'holders').map(parseHolder);
  }, [status, offset]);
  const needle = query.trim().toLowerCase();
  const rows = (loaded.data ?? []).filter((h) => needle === '' || String(h.id).includes(needle) || h.name.toLowerCase().includes(needle));
  const typedId = parseIntInput(query, 1, HOLDER_ID_MAX);
  return (
    <Section
      title={t('Holders', '持卡人')}
      actions={
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            if (typedId !== undefined) location.hash = `#/holders/${typedId}`;
          }}
        >
          <input
            placeholder={t('Number or name', '学工号或姓名')}
            value={query}
            maxLength={40}
            data-testid="holder-search"
            onInput={(e) => setQuery(e.currentTarget.value)}
          />
          <button type="submit" disabled={typedId === undefined}>
            {t('Open', '打开')}
          </button>
          <select
            value={status}
            onChange={(e) => {
              const v = e.currentTarget.value;
              setStatus(v === 'active' || v === 'blocked' || v === 'graduated' ? v : '');
              setOffset(0);
            }}
          >
            <option value="">{t('All', '全部')}</option>
            <option value="active">{holderStatusWords('active')}</option>
            <option value="blocked">{holderStatusWords('blocked')}</option>
            <option value="graduated">{holderStatusWords('graduated')}</option>
          </select>
        </form>
      }
    >
      <Loading loaded={loaded} />
      <table data-testid="holders">
        <thead>
          <tr>
            <th>{t('Number', '学工号')}</th>
            <th>{t('Name', '姓名')}</th>
            <th>{t('Role', '身份')}</th>
            <th>{t('Campus', '校区')}</th>
            <th>{t('Status', '状态')}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((h) => (
            <tr key={h.id}>
              <td>
                <a href={`#/holders/${h.id}`}>{h.id}</a>
              </td>
              <td>{h.name}</td>
              <td>{holderRoleWords(h.role)}</td>
              <td>{h.campus}</td>
              <td>
                <span class={h.status === 'active' ? 'badge ok' : 'badge bad'}>{holderStatusWords(h.status)}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="row">
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - HOLDERS_PAGE))}>
          {t('Previous', '上一页')}
        </button>
        <button type="button" disabled={(loaded.data?.length ?? 0) < HOLDERS_PAGE} onClick={() => setOffset(offset + HOLDERS_PAGE)}>
          {t('Next', '下一页')}
        </button>
      </div>
    </Section>
  );
}

interface HolderView {
  readonly holder: HolderRow;
  readonly agreement: { version: number; acceptedAtS: number | null } | null;
  readonly purses: { cash: number; subsidy: number; creditLimit: number; creditUsed: number; arrears: number; available: number };
  readonly devices: readonly { id: number; label: string; status: string; registeredAtS: number | null }[];
  readonly credentials: readonly {
    serial: number;
    deviceId: number | null;
    status: string;
    notBeforeS: number | null;
    notAfterS: number | null;
    offlineFen: number | null;
  }[];
}

function parseHolderView(v: unknown): HolderView {
  const o = obj(v, 'holder view');
  const p = obj(o.purses, 'purses');
  const a = o.agreement === null || o.agreement === undefined ? null : obj(o.agreement, 'agreement');
  return {
    holder: parseHolder(o.holder),
    agreement: a === null ? null : { version: int(a.version, 'agreement version'), acceptedAtS: epochS(a.acceptedAt, 'acceptedAt') },
    purses: {
      cash: int(p.cash, 'cash'),
      subsidy: int(p.subsidy, 'subsidy'),
      creditLimit: int(p.creditLimit, 'creditLimit'),
      creditUsed: int(p.creditUsed, 'creditUsed'),
      arrears: int(p.arrears, 'arrears'),
      available: int(p.available, 'available'),
    },
    devices: arr(o.devices ?? [], 'devices').map((d) => {
      const x = obj(d, 'device');
      return {
        id: int(x.id, 'device id'),
        label: strOrNull(x.label) ?? '',
        status: str(x.status, 'device status'),
        registeredAtS: epochS(x.registeredAt ?? x.registered_at, 'registeredAt'),
      };
    }),
    credentials: arr(o.credentials ?? [], 'credentials').map((c) => {
      const x = obj(c, 'credential');
      return {
        serial: int(x.serial ?? x.id, 'credential serial'),
        deviceId: intOrNull(x.deviceId ?? x.device_id, 'deviceId'),
        status: str(x.status, 'credential status'),
        notBeforeS: epochS(x.notBefore ?? x.not_before, 'notBefore'),
        notAfterS: epochS(x.notAfter ?? x.not_after, 'notAfter'),
        offlineFen: intOrNull(x.offlineLimitFen ?? x.offline_total, 'offlineLimitFen'),
      };
    }),
  };
}

interface HistoryItem {
  readonly entryId: number;
  readonly postedAtS: number | null;
  readonly kind: string;
  readonly amountFen: number;
  readonly state: string;
}

function parseHistory(v: unknown): {
  items: HistoryItem[];
  arrearsFen: number;
  awaiting: { key: string; timeS: number; amountFen: number }[];
} {
  const o = obj(v, 'history');
  return {
    arrearsFen: int(obj(o.owed, 'owed').arrearsFen, 'arrearsFen'),
    awaiting: arr(o.awaitingClearing ?? [], 'awaitingClearing').map((a) => {
      const x = obj(a, 'awaiting');
      return {
        key: `${int(x.terminalId, 'terminalId')}:${int(x.sequence, 'sequence')}`,
        timeS: int(x.time, 'time'),
        amountFen: int(x.amountFen, 'amountFen'),
      };
    }),
    items: arr(o.items, 'items').map((i) => {
      const x = obj(i, 'history item');
      return {
        entryId: int(x.entryId, 'entryId'),
        postedAtS: epochS(x.postedAt, 'postedAt'),
        kind: str(x.kind, 'kind'),
        amountFen: int(x.amountFen, 'amountFen'),
        state: str(x.state, 'state'),
      };
    }),
  };
}

function kindWords(k: string): string {
  const m: Record<string, [string, string]> = {
    topup: ['Top-up', '充值'],
    subsidy_grant: ['Subsidy', '补贴'],
    payment: ['Payment', '消费'],
    offline_payment: ['Offline payment', '离线消费'],
    online_payment: ['Online payment', '在线消费'],
    reversal: ['Reversal', '冲正'],
    loss_payment: ['Paid from the loss reserve', '损失准备金赔付'],
    advance: ['Operator advance (owed)', '运营方垫付（欠款）'],
    write_off: ['Written off', '核销'],
  };
  const w = m[k];
  return w === undefined ? k : t(w[0], w[1]);
}

function credentialStatusWords(s: string): string {
  return s === 'active'
    ? t('active', '有效')
    : s === 'revoked'
      ? t('revoked', '已吊销')
      : s === 'expired'
        ? t('expired', '已过期')
        : s === 'lost'
          ? t('lost', '已挂失')
          : s;
}

type Dialog = 'block' | 'unblock' | 'lost' | undefined;

export function HolderDetail({ id, role }: { id: string; role: StaffRole }) {
  const holderId = parseIntInput(id, 1, HOLDER_ID_MAX);
  const loaded = useLoad(async () => parseHolderView(await call('GET', `/v1/holders/${holderId ?? 0}`)), [holderId]);
  const history = useLoad(async () => parseHistory(await call('GET', `/v1/holders/${holderId ?? 0}/history?limit=20`)), [holderId]);
  const [dialog, setDialog] = useState<Dialog>(undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const action = useAction();
  if (holderId === undefined) return <ErrorBanner error={t('Not a holder number', '不是有效的学工号')} />;
  const v = loaded.data;
  if (v === undefined) return <Loading loaded={loaded} />;
  const h = v.holder;
  const admin = role === 'operator_admin';
  const finance = role === 'school_finance';
  const after = (msg: string) => {
    setNotice(msg);
    loaded.reload();
    history.reload();
  };
  return (
    <div class="stack" data-testid="holder-detail">
      <Section
        title={`${h.name} · ${h.id}`}
        actions={
          admin && (
            <div class="row">
              {h.status === 'blocked' ? (
                <button type="button" data-testid="unblock" onClick={() => setDialog('unblock')}>
                  {t('Unblock', '解除冻结')}
                </button>
              ) : (
                <button type="button" class="danger" data-testid="block" onClick={() => setDialog('block')}>
                  {t('Block', '冻结')}
                </button>
              )}
              <button type="button" class="danger" data-testid="lost-card" onClick={() => setDialog('lost')}>
                {t('Report lost card', '挂失')}
              </button>
            </div>
          )
        }
      >
        {notice !== undefined && (
          <p class="notice" data-testid="notice">
            {notice}
          </p>
        )}
        <dl class="facts">
          <dt>{t('Status', '状态')}</dt>
          <dd data-testid="holder-status">
            <span class={h.status === 'active' ? 'badge ok' : 'badge bad'}>{holderStatusWords(h.status)}</span>
            {h.blockReason !== null && <span class="muted"> {h.blockReason}</span>}
          </dd>
          <dt>{t('Role', '身份')}</dt>
          <dd>{holderRoleWords(h.role)}</dd>
          <dt>{t('Campus', '校区')}</dt>
          <dd>{h.campus}</dd>
          <dt>{t('Withholding agreement', '代扣协议')}</dt>
          <dd data-testid="agreement">
            {v.agreement === null
              ? t('not accepted', '未签署')
              : t(
                  `version ${v.agreement.version}, accepted ${when(v.agreement.acceptedAtS)}`,
                  `第 ${v.agreement.version} 版，签署于 ${when(v.agreement.acceptedAtS)}`,
                )}
          </dd>
        </dl>
      </Section>
      <Section title={t('Purses', '钱包')}>
        <table data-testid="purses">
          <tbody>
            <tr>
              <th>{t('Cash', '现金')}</th>
              <td class="num" data-purse="cash">
                {yuan(v.purses.cash)}
              </td>
              <th>{t('Subsidy', '补贴')}</th>
              <td class="num" data-purse="subsidy">
                {yuan(v.purses.subsidy)}
              </td>
            </tr>
            <tr>
              <th>{t('Credit line', '授信额度')}</th>
              <td class="num">{yuan(v.purses.creditLimit)}</td>
              <th>{t('Credit used', '已用授信')}</th>
              <td class="num">{yuan(v.purses.creditUsed)}</td>
            </tr>
            <tr>
              <th>{t('Arrears', '欠款')}</th>
              <td class="num">{yuan(v.purses.arrears)}</td>
              <th>{t('Available', '可用')}</th>
              <td class="num" data-purse="available">
                {yuan(v.purses.available)}
              </td>
            </tr>
          </tbody>
        </table>
        {admin && <MoneyForm kind="topup" holderId={h.id} onDone={after} />}
        {finance && <MoneyForm kind="subsidy" holderId={h.id} onDone={after} />}
        {finance && <MoneyForm kind="credit" holderId={h.id} onDone={after} />}
      </Section>
      <Section title={t('Devices', '设备')}>
        {v.devices.length === 0 ? (
          <p class="muted" data-testid="devices">
            {t('No device registered', '尚未注册设备')}
          </p>
        ) : (
          <table data-testid="devices">
            <thead>
              <tr>
                <th>#</th>
                <th>{t('Label', '名称')}</th>
                <th>{t('Status', '状态')}</th>
                <th>{t('Registered', '注册时间')}</th>
              </tr>
            </thead>
            <tbody>
              {v.devices.map((d) => (
                <tr key={d.id}>
                  <td>{d.id}</td>
                  <td>{d.label}</td>
                  <td>{credentialStatusWords(d.status)}</td>
                  <td>{when(d.registeredAtS)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title={t('Credentials', '离线凭证')}>
        {v.credentials.length === 0 ? (
          <p class="muted" data-testid="credentials">
            {t('No credential issued', '尚未签发凭证')}
          </p>
        ) : (
          <table data-testid="credentials">
            <thead>
              <tr>
                <th>{t('Serial', '序号')}</th>
                <th>{t('Device', '设备')}</th>
                <th>{t('Status', '状态')}</th>
                <th>{t('Valid until', '有效期至')}</th>
                <th class="num">{t('Offline limit', '离线额度')}</th>
              </tr>
            </thead>
            <tbody>
              {v.credentials.map((c) => (
                <tr key={c.serial} data-credential-status={c.status}>
                  <td>{c.serial}</td>
                  <td>{c.deviceId ?? '—'}</td>
                  <td>
                    <span class={c.status === 'active' ? 'badge ok' : 'badge bad'}>{credentialStatusWords(c.status)}</span>
                  </td>
                  <td>{when(c.notAfterS)}</td>
                  <td class="num">{c.offlineFen === null ? '—' : yuan(c.offlineFen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title={t('History', '账单')}>
        <Loading loaded={history} />
        {history.data !== undefined && (
          <table data-testid="history">
            <thead>
              <tr>
                <th>{t('Time', '时间')}</th>
                <th>{t('What', '类型')}</th>
                <th class="num">{t('Amount', '金额')}</th>
                <th>{t('State', '状态')}</th>
              </tr>
            </thead>
            <tbody>
              {history.data.awaiting.map((a) => (
                <tr key={a.key} class="muted" data-testid="history-item" data-state="awaiting" data-amount={-a.amountFen}>
                  <td>{when(a.timeS)}</td>
                  <td>{t('Offline payment', '离线消费')}</td>
                  <td class="num">{yuan(-a.amountFen)}</td>
                  <td>{t('awaiting clearing', '待清分')}</td>
                </tr>
              ))}
              {history.data.items.map((i) => (
                <tr key={i.entryId} data-testid="history-item" data-state={i.state} data-kind={i.kind} data-amount={i.amountFen}>
                  <td>{when(i.postedAtS)}</td>
                  <td>{kindWords(i.kind)}</td>
                  <td class="num">{yuan(i.amountFen)}</td>
                  <td>{i.state === 'settled' ? t('settled', '已入账') : i.state === 'pending' ? t('pending', '处理中') : i.state}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      {dialog === 'block' && (
        <Confirm
          title={t(`Block ${h.name}?`, `冻结 ${h.name}？`)}
          body={<p>{t('Every credential is revoked and the holder is deny-listed at once.', '其全部凭证将被吊销并立即列入黑名单。')}</p>}
          confirmLabel={t('Block', '冻结')}
          danger
          reason={{ label: t('Reason (required)', '原因（必填）'), required: true }}
          error={action.error}
          onCancel={() => {
            action.clear();
            setDialog(undefined);
          }}
          onConfirm={(reason) =>
            action.run(async () => {
              await call('POST', `/v1/holders/${h.id}/block`, { reason });
              after(t('Blocked and deny-listed', '已冻结并列入黑名单'));
            })
          }
        />
      )}
      {dialog === 'unblock' && (
        <Confirm
          title={t(`Unblock ${h.name}?`, `解除冻结 ${h.name}？`)}
          confirmLabel={t('Unblock', '解除冻结')}
          reason={{ label: t('Reason (required)', '原因（必填）'), required: true }}
          error={action.error}
          onCancel={() => {
            action.clear();
            setDialog(undefined);
          }}
          onConfirm={(reason) =>
            action.run(async () => {
              await call('POST', `/v1/holders/${h.id}/unblock`, { reason });
              after(t('Unblocked', '已解除冻结'));
            })
          }
        />
      )}
      {dialog === 'lost' && (
        <Confirm
          title={t(`Report ${h.name}'s card or phone lost?`, `为 ${h.name} 挂失卡片或手机？`)}
          body={
            <p>
              {t(
                'Every live credential is revoked and deny-listed, the devices are marked lost and the holder is signed out everywhere.',
                '所有有效凭证将被吊销并列入黑名单，设备标记为丢失，持卡人在所有设备上退出登录。',
              )}
            </p>
          }
          confirmLabel={t('Report lost', '确认挂失')}
          danger
          reason={{ label: t('Note (optional)', '备注（可选）'), required: false }}
          error={action.error}
          onCancel={() => {
            action.clear();
            setDialog(undefined);
          }}
          onConfirm={(reason) =>
            action.run(async () => {
              const r = obj(await call('POST', `/v1/holders/${h.id}/lost-card`, reason === '' ? {} : { reason }), 'lost card');
              const n = int(r.credentialsRevoked, 'credentialsRevoked');
              const d = int(r.devicesLost, 'devicesLost');
              after(
                t(
                  `Reported lost: ${n} credential(s) revoked, ${d} device(s) marked lost, deny list v${int(r.denyListVersion, 'denyListVersion')} published`,
                  `已挂失：吊销 ${n} 个凭证，${d} 台设备标记为丢失，已发布黑名单第 ${int(r.denyListVersion, 'denyListVersion')} 版`,
                ),
              );
            })
          }
        />
      )}
    </div>
  );
}

/** Top-up (operator), subsidy and credit line (school finance): an amount in yuan, idempotent per form. */
function MoneyForm({ kind, holderId, onDone }: { kind: 'topup' | 'subsidy' | 'credit'; holderId: number; onDone: (msg: string) => void }) {
  const [amount, setAmount] = useState('');
  const [key, setKey] = useState(idempotencyKey);
  const action = useAction();
  const fen = parseYuanInput(amount);
  const label =
    kind === 'topup'
      ? t('Top up (cashier)', '充值（柜台）')
      : kind === 'subsidy'
        ? t('Grant subsidy', '发放补贴')
        : t('Set credit line', '设置授信额度');
  return (
    <form
      class="row inline-form"
      data-testid={`form-${kind}`}
      onSubmit={async (e) => {
        e.preventDefault();
        if (fen === undefined) return;
        const ok = await action.run(async () => {
          if (kind === 'topup')
            await call('POST', `/v1/holders/${holderId}/topups`, { amount: fen, channel: 'cashier', idempotencyKey: key });
          else if (kind === 'subsidy') await call('POST', `/v1/holders/${holderId}/subsidies`, { amount: fen, idempotencyKey: key });
          else await call('PUT', `/v1/holders/${holderId}/credit-line`, { limit: fen });
        });
        if (ok) {
          setAmount('');
          setKey(idempotencyKey());
          onDone(`${label}: ${yuan(fen)} ✓`);
        }
      }}
    >
      <span>{label}</span>
      <input inputMode="decimal" placeholder="¥ 0.00" value={amount} maxLength={13} onInput={(e) => setAmount(e.currentTarget.value)} />
      <button type="submit" disabled={fen === undefined || (kind !== 'credit' && fen === 0) || action.busy}>
        {t('Confirm', '确认')}
      </button>
      {amount !== '' && fen === undefined && <span class="bad-text">{t('Enter yuan like 12.50', '请输入金额，如 12.50')}</span>}
      <ErrorBanner error={action.error} onClose={action.clear} />
    </form>
  );
}
