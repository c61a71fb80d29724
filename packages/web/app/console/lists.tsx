/**
 * Deny lists and the risk policy. The policy editor asks the platform for the worst-case offline
 * loss per holder under the edited settings and shows it, with what changed, before the save
 * button is enabled; any further edit disables it again until a new preview.
 */
import { useState } from 'preact/hooks';
import { t } from '../shared/i18n.js';
import { ErrorBanner, yuan } from '../shared/ui.js';
import { arr, call, epochS, int, obj, type StaffRole, str } from './api.js';
import { Confirm, Loading, parseIntInput, parseYuanInput, Section, useAction, useLoad, when } from './kit.js';

const DENY_TYPES = ['holder', 'credential', 'card'] as const;
type DenyType = (typeof DENY_TYPES)[number];
const ID_MAX = 2 ** 48 - 1;

function denyTypeWords(x: string): string {
  return x === 'holder' ? t('Holder', '持卡人') : x === 'credential' ? t('Credential', '凭证') : x === 'card' ? t('Card', '卡片') : x;
}

export function DenyPage() {
  const loaded = useLoad(
    async () =>
      arr(obj(await call('GET', '/v1/deny-entries'), 'deny entries').entries, 'entries').map((v) => {
        const o = obj(v, 'entry');
        return { type: str(o.type, 'type'), id: int(o.id, 'id'), reason: str(o.reason, 'reason'), addedAtS: epochS(o.addedAt, 'addedAt') };
      }),
    [],
  );
  const [type, setType] = useState<DenyType>('holder');
  const [id, setId] = useState('');
  const [reason, setReason] = useState('');
  const [removing, setRemoving] = useState<{ type: string; id: number } | undefined>(undefined);
  const action = useAction();
  const n = parseIntInput(id, 1, ID_MAX);
  const ok = n !== undefined && reason.trim().length > 0 && reason.trim().length <= 500;
  return (
    <Section title={t('Deny list', '黑名单')}>
      <form
        class="row wrap"
        data-testid="deny-add"
        onSubmit={(e) => {
          e.preventDefault();
          if (!ok) return;
          void action.run(async () => {
            await call('POST', '/v1/deny-entries', { type, id: n, denied: true, reason: reason.trim() });
            setId('');
            setReason('');
            loaded.reload();
          });
        }}
      >
        <select value={type} onChange={(e) => setType(DENY_TYPES.find((x) => x === e.currentTarget.value) ?? 'holder')}>
          {DENY_TYPES.map((x) => (
            <option key={x} value={x}>
              {denyTypeWords(x)}
            </option>
          ))}
        </select>
        <input placeholder={t('Number', '编号')} value={id} maxLength={15} onInput={(e) => setId(e.currentTarget.value)} />
        <input placeholder={t('Reason', '原因')} value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled={!ok || action.busy}>
          {t('Deny and publish', '加入并发布')}
        </button>
      </form>
      <ErrorBanner error={action.error} onClose={action.clear} />
      <Loading loaded={loaded} />
      <table data-testid="deny-entries">
        <thead>
          <tr>
            <th>{t('Type', '类型')}</th>
            <th>{t('Number', '编号')}</th>
            <th>{t('Reason', '原因')}</th>
            <th>{t('Added', '加入时间')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(loaded.data ?? []).map((e) => (
            <tr key={`${e.type}-${e.id}`}>
              <td>{denyTypeWords(e.type)}</td>
              <td>{e.type === 'holder' ? <a href={`#/holders/${e.id}`}>{e.id}</a> : e.id}</td>
              <td>{e.reason}</td>
              <td>{when(e.addedAtS)}</td>
              <td>
                <button type="button" onClick={() => setRemoving({ type: e.type, id: e.id })}>
                  {t('Remove', '移出')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {removing !== undefined && (
        <Confirm
          title={t(
            `Remove ${denyTypeWords(removing.type)} ${removing.id} from the deny list?`,
            `将${denyTypeWords(removing.type)} ${removing.id} 移出黑名单？`,
          )}
          confirmLabel={t('Remove and publish', '移出并发布')}
          reason={{ label: t('Reason (required)', '原因（必填）'), required: true }}
          error={action.error}
          onCancel={() => setRemoving(undefined)}
          onConfirm={(r) =>
            action.run(async () => {
              await call('POST', '/v1/deny-entries', { type: removing.type, id: removing.id, denied: false, reason: r });
              loaded.reload();
            })
          }
        />
      )}
    </Section>
  );
}

/** The settings fields a person edits here: fen fields are typed in yuan, the others as whole numbers. */
const FIELDS: readonly { key: string; en: string; zh: string; unit: 'fen' | 's' | 'n' | 'ms' | 'd'; min: number; max: number }[] = [
  { key: 'offlineTotalCapFen', en: 'Offline total per credential', zh: '单凭证离线总额', unit: 'fen', min: 0, max: 10_000_000 },
  { key: 'perPaymentCapFen', en: 'Per payment (credential)', zh: '单笔上限（凭证）', unit: 'fen', min: 0, max: 1_000_000 },
  { key: 'offlineCountCap', en: 'Offline payments per credential', zh: '单凭证离线笔数', unit: 'n', min: 1, max: 1000 },
  { key: 'credentialValidityS', en: 'Credential validity', zh: '凭证有效期', unit: 's', min: 600, max: 31 * 86_400 },
  { key: 'minimumAvailableFen', en: 'Minimum available to issue', zh: '签发所需最低可用余额', unit: 'fen', min: 0, max: 1_000_000 },
  { key: 'terminalPerPaymentMaxFen', en: 'Per payment (terminal)', zh: '单笔上限（终端）', unit: 'fen', min: 0, max: 1_000_000 },
  { key: 'dayTotalMaxFen', en: 'Day total per payer per terminal', zh: '每终端每人日累计', unit: 'fen', min: 0, max: 10_000_000 },
  { key: 'dayCountMax', en: 'Day count per payer per terminal', zh: '每终端每人日笔数', unit: 'n', min: 0, max: 1000 },
  { key: 'codeWindowS', en: 'Code freshness window', zh: '付款码有效窗口', unit: 's', min: 10, max: 3600 },
  { key: 'clockSkewS', en: 'Clock skew allowed', zh: '允许时钟偏差', unit: 's', min: 0, max: 3600 },
  { key: 'maxOfflineS', en: 'Longest a terminal may stay offline', zh: '终端最长离线时间', unit: 's', min: 60, max: 30 * 86_400 },
  { key: 'maxListAgeS', en: 'Oldest deny list a terminal may use', zh: '黑名单最长有效期', unit: 's', min: 60, max: 30 * 86_400 },
  { key: 'onlineBudgetMs', en: 'Online authorization budget', zh: '在线授权时限', unit: 'ms', min: 10, max: 10_000 },
  { key: 'collectionAfterDays', en: 'Collection after', zh: '逾期转催收天数', unit: 'd', min: 14, max: 1_095 },
];

const SCENE_WORDS: Record<string, [string, string]> = {
  canteen: ['canteen', '食堂'],
  shop: ['shop', '超市'],
  bus: ['bus', '校车'],
  gate: ['gate', '门禁'],
};

function sceneLabel(scene: string): string {
  const w = SCENE_WORDS[scene] ?? [scene, scene];
  return t(`Per payment at the ${w[0]}`, `${w[1]}单笔上限`);
}

type Settings = Record<string, unknown> & { scenes: { scene: string; perPaymentMaxFen: number }[] };

function unitWords(u: string): string {
  return u === 's' ? t('s', '秒') : u === 'ms' ? 'ms' : u === 'd' ? t('days', '天') : u === 'n' ? t('payments', '笔') : '';
}

/** Seconds as hours or days, for reading a policy at a glance. */
function duration(s: number): string {
  if (s >= 86_400 && s % 86_400 === 0) return t(`${s / 86_400} d`, `${s / 86_400} 天`);
  if (s >= 3600) return t(`${Math.round((s / 3600) * 10) / 10} h`, `${Math.round((s / 3600) * 10) / 10} 小时`);
  return s >= 60 ? t(`${Math.round(s / 60)} min`, `${Math.round(s / 60)} 分钟`) : t(`${s} s`, `${s} 秒`);
}

function show(unit: string, v: unknown): string {
  if (typeof v !== 'number') return '—';
  return unit === 'fen' ? yuan(v) : `${v} ${unitWords(unit)}`;
}

function toText(unit: string, v: unknown): string {
  if (typeof v !== 'number') return '';
  return unit === 'fen' ? `${Math.trunc(v / 100)}.${String(v % 100).padStart(2, '0')}` : String(v);
}

interface Preview {
  readonly draft: string;
  readonly perTerminalFen: number;
  readonly totalFen: number;
}

async function preview(settings: unknown): Promise<{ perTerminalFen: number; totalFen: number }> {
  const w = obj(obj(await call('POST', '/v1/settings/preview', { settings }), 'preview').worstCase, 'worstCase');
  return { perTerminalFen: int(w.perTerminalFen, 'perTerminalFen'), totalFen: int(w.totalFen, 'totalFen') };
}

export function PolicyPage({ role }: { role: StaffRole }) {
  const loaded = useLoad(async () => {
    const o = obj(await call('GET', '/v1/settings'), 'settings');
    const settings = obj(o.settings, 'settings') as Settings;
    arr(settings.scenes, 'scenes');
    return { version: int(o.version, 'version'), settings, worst: await preview(settings) };
  }, []);
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [previewed, setPreviewed] = useState<Preview | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const action = useAction();
  const d = loaded.data;
  if (d === undefined) return <Loading loaded={loaded} />;
  const admin = role === 'operator_admin';

  // The draft: the current settings with every typed field parsed; an unparsable field blocks preview.
  const invalid: string[] = [];
  const draft: Settings = { ...d.settings, scenes: d.settings.scenes.map((s) => ({ ...s })) };
  for (const f of FIELDS) {
    const text = texts[f.key];
    if (text === undefined) continue;
    const v = f.unit === 'fen' ? parseYuanInput(text, f.max) : parseIntInput(text, f.min, f.max);
    if (v === undefined || v < f.min) invalid.push(f.key);
    else draft[f.key] = v;
  }
  for (const s of draft.scenes) {
    const text = texts[`scene:${s.scene}`];
    if (text === undefined) continue;
    const v = parseYuanInput(text, 1_000_000);
    if (v === undefined) invalid.push(`scene:${s.scene}`);
    else s.perPaymentMaxFen = v;
  }
  const draftJson = JSON.stringify(draft);
  const changed = FIELDS.filter((f) => draft[f.key] !== d.settings[f.key]);
  const changedScenes = draft.scenes.filter(
    (s) => s.perPaymentMaxFen !== d.settings.scenes.find((x) => x.scene === s.scene)?.perPaymentMaxFen,
  );
  const fresh = previewed !== undefined && previewed.draft === draftJson;
  const edit = (key: string, value: string) => {
    setTexts({ ...texts, [key]: value });
    setSaved(undefined);
  };

  return (
    <div class="stack">
      <Section title={t(`Risk policy (version ${d.version})`, `风控策略（第 ${d.version} 版）`)}>
        <p class="muted">
          {t(
            `Worst-case offline loss per holder now: ${yuan(d.worst.totalFen)} (${yuan(d.worst.perTerminalFen)} on each terminal)`,
            `当前每名持卡人最坏离线损失：${yuan(d.worst.totalFen)}（每台终端 ${yuan(d.worst.perTerminalFen)}）`,
          )}
        </p>
        <table class="form-table" data-testid="policy-form">
          <tbody>
            {FIELDS.map((f) => (
              <tr key={f.key}>
                <th>{t(f.en, f.zh)}</th>
                <td>
                  <input
                    name={f.key}
                    class={invalid.includes(f.key) ? 'invalid' : ''}
                    value={texts[f.key] ?? toText(f.unit, d.settings[f.key])}
                    maxLength={13}
                    size={12}
                    onInput={(e) => edit(f.key, e.currentTarget.value)}
                  />{' '}
                  <span class="muted">
                    {f.unit === 'fen' ? t('yuan', '元') : unitWords(f.unit)}
                    {f.unit === 's' && typeof draft[f.key] === 'number' && ` ≈ ${duration(draft[f.key] as number)}`}
                  </span>
                </td>
              </tr>
            ))}
            {draft.scenes.map((s) => (
              <tr key={s.scene}>
                <th>{sceneLabel(s.scene)}</th>
                <td>
                  <input
                    name={`scene:${s.scene}`}
                    class={invalid.includes(`scene:${s.scene}`) ? 'invalid' : ''}
                    value={texts[`scene:${s.scene}`] ?? toText('fen', d.settings.scenes.find((x) => x.scene === s.scene)?.perPaymentMaxFen)}
                    maxLength={13}
                    size={12}
                    onInput={(e) => edit(`scene:${s.scene}`, e.currentTarget.value)}
                  />{' '}
                  <span class="muted">{t('yuan', '元')}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {invalid.length > 0 && <ErrorBanner error={t('Some fields are not valid numbers in range', '部分字段不是范围内的有效数字')} />}
        <div class="row">
          <button
            type="button"
            data-testid="policy-preview"
            disabled={invalid.length > 0 || action.busy}
            onClick={() =>
              void action.run(async () => {
                const w = await preview(draft);
                setPreviewed({ draft: draftJson, ...w });
              })
            }
          >
            {t('Preview worst case', '预览最坏情况')}
          </button>
          {admin && (
            <button
              type="button"
              class="primary"
              data-testid="policy-save"
              disabled={!fresh || action.busy}
              title={fresh ? '' : t('Preview first', '请先预览')}
              onClick={() =>
                void action.run(async () => {
                  const r = obj(await call('PUT', '/v1/settings', { settings: draft }), 'saved');
                  setSaved(
                    t(
                      `Saved as version ${int(r.version, 'version')}; policy ${int(r.policyVersion, 'policyVersion')} published to terminals`,
                      `已保存为第 ${int(r.version, 'version')} 版；策略第 ${int(r.policyVersion, 'policyVersion')} 版已发布到终端`,
                    ),
                  );
                  setTexts({});
                  setPreviewed(undefined);
                  loaded.reload();
                })
              }
            >
              {t('Save and publish', '保存并发布')}
            </button>
          )}
        </div>
        <ErrorBanner error={action.error} onClose={action.clear} />
        {saved !== undefined && (
          <p class="notice" data-testid="policy-saved">
            {saved}
          </p>
        )}
      </Section>
      {previewed !== undefined && (
        <Section title={t('Preview', '预览')}>
          <div class={fresh ? 'preview' : 'preview stale'} data-testid="policy-worst">
            <p>
              {t('Worst-case offline loss per holder:', '每名持卡人最坏离线损失：')}{' '}
              <strong data-testid="worst-total">{yuan(previewed.totalFen)}</strong>{' '}
              <span class="muted">
                ({t(`was ${yuan(d.worst.totalFen)}`, `原为 ${yuan(d.worst.totalFen)}`)};{' '}
                {t(`${yuan(previewed.perTerminalFen)} on each terminal`, `每台终端 ${yuan(previewed.perTerminalFen)}`)})
              </span>
            </p>
            <p class="muted">
              {t(
                'Each terminal applies the credential’s offline total and its own day cap without seeing the others, so a payer visiting every active terminal offline could spend this much before the platform sees the records.',
                '每台终端独立执行凭证离线总额与日累计上限，互不知情；持卡人若离线走遍所有已激活终端，平台收到记录前最多可能被消费这么多。',
              )}
            </p>
            {!fresh && <p class="bad-text">{t('Edited since this preview: preview again to save', '预览后已修改：请重新预览后保存')}</p>}
          </div>
          <h3>{t('What changes', '变更内容')}</h3>
          {changed.length === 0 && changedScenes.length === 0 ? (
            <p class="muted">{t('Nothing changed', '无变更')}</p>
          ) : (
            <ul data-testid="policy-changes">
              {changed.map((f) => (
                <li key={f.key}>
                  {t(f.en, f.zh)}: {show(f.unit, d.settings[f.key])} → <strong>{show(f.unit, draft[f.key])}</strong>
                </li>
              ))}
              {changedScenes.map((s) => (
                <li key={s.scene}>
                  {sceneLabel(s.scene)}: {yuan(d.settings.scenes.find((x) => x.scene === s.scene)?.perPaymentMaxFen ?? 0)} →{' '}
                  <strong>{yuan(s.perPaymentMaxFen)}</strong>
                </li>
              ))}
            </ul>
          )}
        </Section>
      )}
    </div>
  );
}
