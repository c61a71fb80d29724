/**
 * The simulator's report: one self-contained HTML page (`duet sim --report FILE.html`) with inline
 * CSS and hand-drawn inline SVG charts, no scripts and nothing fetched, so it opens the same from a
 * CI artefact, an e-mail or a laptop with no network. Labels are in English and Chinese side by side.
 * Every piece of text that comes from the result is escaped: a scenario is outside input too.
 */
import type { AttackKind, AttackTally, Invariant, MinuteWindow, SimResult } from './result.js';

/** Chart size in SVG user units; the page scales it to its width. */
const CHART_W = 720;
const CHART_H = 220;
const PAD = { left: 52, right: 16, top: 14, bottom: 34 } as const;

const GOOD = '#1a7f37';
const BAD = '#cf222e';

/** Escapes text for an HTML element or a quoted attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const fmt = (n: number): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(n));

/** "Label / 标签", escaped. */
const bi = (en: string, zh: string): string => `${escapeHtml(en)} / ${escapeHtml(zh)}`;

/** Wall-clock label of a minute, "12:35", from the scenario's start label; "+35" when that is not HH:MM. */
export function clockLabel(startsAt: string, minute: number): string {
  const m = /^(\d{1,2}):(\d{2})$/.exec(startsAt);
  if (m === null) return `+${minute}`;
  const total = (Number(m[1]) * 60 + Number(m[2]) + Math.round(minute)) % 1440;
  return `${String(Math.floor(total / 60)).padStart(2, '0')}:${String(total % 60).padStart(2, '0')}`;
}

/** A round upper bound for an axis (1, 2, 5 × 10^k), at least 1 so empty series still draw. */
function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

const maxOf = (xs: readonly number[]): number => xs.reduce((a, b) => (Number.isFinite(b) && b > a ? b : a), 0);

interface Line {
  readonly label: string;
  readonly values: readonly number[];
  readonly color: string;
}

interface TimeChart {
  readonly title: string;
  readonly lines: readonly Line[];
  readonly minutes: number;
  readonly startsAt: string;
  readonly outages: readonly MinuteWindow[];
}

/** Y grid lines and labels from 0 to `top`, four steps. */
function yAxis(top: number, plotH: number): string {
  const out: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    out.push(`<line class="grid" x1="${PAD.left}" x2="${CHART_W - PAD.right}" y1="${y}" y2="${y}"/>`);
    out.push(`<text class="ytick" x="${PAD.left - 6}" y="${y + 4}">${escapeHtml(fmt((top * i) / 4))}</text>`);
  }
  return out.join('');
}

/** A line chart over the simulated minutes, outage windows shaded behind the lines. */
export function timeChart(c: TimeChart): string {
  const plotW = CHART_W - PAD.left - PAD.right;
  const plotH = CHART_H - PAD.top - PAD.bottom;
  const n = Math.max(1, c.minutes, ...c.lines.map((l) => l.values.length));
  const top = niceMax(Math.max(0, ...c.lines.map((l) => maxOf(l.values))));
  const x = (minute: number): number => PAD.left + (plotW * Math.min(Math.max(minute, 0), n)) / n;
  const y = (v: number): number => PAD.top + plotH - (plotH * Math.min(Math.max(Number.isFinite(v) ? v : 0, 0), top)) / top;
  const shades = c.outages
    .filter((w) => w.to > w.from)
    .map(
      (w) =>
        `<rect class="outage" x="${x(w.from).toFixed(1)}" y="${PAD.top}" width="${(x(w.to) - x(w.from)).toFixed(1)}" height="${plotH}">` +
        `<title>${escapeHtml(`outage / 断网 ${clockLabel(c.startsAt, w.from)}–${clockLabel(c.startsAt, w.to)}`)}</title></rect>`,
    )
    .join('');
  const step = n <= 20 ? 5 : n <= 90 ? 10 : n <= 240 ? 30 : 60;
  const xticks: string[] = [];
  for (let m = 0; m <= n; m += step) {
    xticks.push(
      `<text class="xtick" x="${x(m).toFixed(1)}" y="${CHART_H - PAD.bottom + 16}">${escapeHtml(clockLabel(c.startsAt, m))}</text>`,
    );
  }
  // Each minute's value is drawn at the minute's end, so minute 0's count sits at x(1).
  const paths = c.lines
    .filter((l) => l.values.length > 0)
    .map((l) => {
      const pts = l.values.map((v, i) => `${x(i + 1).toFixed(1)},${y(v).toFixed(1)}`);
      return `<polyline class="line" stroke="${l.color}" points="${x(0).toFixed(1)},${y(l.values[0] ?? 0).toFixed(1)} ${pts.join(' ')}"/>`;
    })
    .join('');
  const legend = c.lines
    .map((l, i) => {
      const lx = PAD.left + 8 + i * 230;
      return `<rect x="${lx}" y="${CHART_H - 12}" width="10" height="10" fill="${l.color}"/><text class="legend" x="${lx + 14}" y="${CHART_H - 3}">${escapeHtml(l.label)}</text>`;
    })
    .join('');
  const outageLegend =
    c.outages.length > 0
      ? `<rect class="outage" x="${CHART_W - 170}" y="${CHART_H - 12}" width="10" height="10"/><text class="legend" x="${CHART_W - 156}" y="${CHART_H - 3}">outage / 断网</text>`
      : '';
  return svg(c.title, `${shades}${yAxis(top, plotH)}${xticks.join('')}${paths}${legend}${outageLegend}`);
}

function svg(title: string, body: string): string {
  return (
    `<figure><figcaption>${escapeHtml(title)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CHART_W} ${CHART_H}" role="img" aria-label="${escapeHtml(title)}">${body}</svg></figure>`
  );
}

/** Decision latency histogram, p50 and p99 marked. Buckets are upper bounds; a trailing count is the overflow. */
export function latencyChart(latency: SimResult['series']['latencyMs']): string {
  const plotW = CHART_W - PAD.left - PAD.right;
  const plotH = CHART_H - PAD.top - PAD.bottom;
  const counts = latency.counts;
  const n = Math.max(1, counts.length);
  const top = niceMax(maxOf(counts));
  const bw = plotW / n;
  const label = (i: number): string => {
    const b = latency.bucketsMs[i];
    return b === undefined ? `>${fmt(latency.bucketsMs[latency.bucketsMs.length - 1] ?? 0)}` : `≤${fmt(b)}`;
  };
  const bars = counts
    .map((v, i) => {
      const h = (plotH * Math.min(Math.max(Number.isFinite(v) ? v : 0, 0), top)) / top;
      return (
        `<rect class="bar" x="${(PAD.left + i * bw + 1).toFixed(1)}" y="${(PAD.top + plotH - h).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${h.toFixed(1)}">` +
        `<title>${escapeHtml(`${label(i)} ms: ${fmt(v)}`)}</title></rect>`
      );
    })
    .join('');
  const every = Math.ceil(n / 12);
  const ticks = counts
    .map((_v, i) =>
      i % every === 0
        ? `<text class="xtick" x="${(PAD.left + (i + 0.5) * bw).toFixed(1)}" y="${CHART_H - PAD.bottom + 16}">${escapeHtml(label(i))}</text>`
        : '',
    )
    .join('');
  // A percentile is marked at the bucket it falls in (linear within the bucket).
  const xOf = (ms: number): number => {
    const b = latency.bucketsMs;
    let i = b.findIndex((u) => ms <= u);
    if (i < 0) i = Math.max(0, Math.min(n - 1, b.length));
    const lo = i === 0 ? 0 : (b[i - 1] ?? 0);
    const hi = b[i] ?? lo;
    const frac = hi > lo ? Math.min(1, Math.max(0, (ms - lo) / (hi - lo))) : 0.5;
    return PAD.left + (i + frac) * bw;
  };
  const marks = (
    [
      ['p50', latency.p50, '#0969da'],
      ['p99', latency.p99, BAD],
    ] as const
  )
    .map(([name, ms, color], k) => {
      const mx = xOf(ms).toFixed(1);
      return (
        `<line class="mark" stroke="${color}" x1="${mx}" x2="${mx}" y1="${PAD.top}" y2="${PAD.top + plotH}"/>` +
        `<text class="legend" fill="${color}" x="${Number(mx) + 4}" y="${PAD.top + 12 + k * 14}">${escapeHtml(`${name} ${fmt(ms)} ms`)}</text>`
      );
    })
    .join('');
  return svg(
    'Decision latency, ms (real terminal code, wall clock) / 决策延迟，毫秒（真实终端代码，墙钟时间）',
    `${yAxis(top, plotH)}${bars}${ticks}${marks}`,
  );
}

/** Losses by cause, fen, as horizontal bars. */
export function lossesChart(losses: SimResult['series']['lossesByCause']): string {
  const entries = Object.entries(losses);
  const rowH = 26;
  const h = Math.max(1, entries.length) * rowH + 20;
  const labelW = 260;
  const top = niceMax(maxOf(entries.map(([, v]) => v)));
  const barW = CHART_W - labelW - 120;
  const rows =
    entries.length === 0
      ? `<text class="legend" x="10" y="24">no losses / 无损失</text>`
      : entries
          .map(([cause, fen], i) => {
            const y = 10 + i * rowH;
            const w = (barW * Math.min(Math.max(Number.isFinite(fen) ? fen : 0, 0), top)) / top;
            return (
              `<text class="label" x="${labelW - 8}" y="${y + 15}">${escapeHtml(cause)}</text>` +
              `<rect class="bar loss" x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}"/>` +
              `<text class="legend" x="${(labelW + w + 6).toFixed(1)}" y="${y + 15}">${escapeHtml(`${fmt(fen)} fen / 分`)}</text>`
            );
          })
          .join('');
  return (
    `<figure><figcaption>${bi('Losses by cause, fen', '按原因统计的损失，分')}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CHART_W} ${h}" role="img" aria-label="losses by cause">${rows}</svg></figure>`
  );
}

function tile(en: string, zh: string, value: string, ok: boolean | undefined): string {
  const cls = ok === undefined ? 'tile' : ok ? 'tile ok' : 'tile bad';
  return `<div class="${cls}"><div class="v">${escapeHtml(value)}</div><div class="k">${bi(en, zh)}</div></div>`;
}

function tiles(r: SimResult): string {
  const s = r.summary;
  const yes = (b: boolean): string => (b ? 'yes / 是' : 'NO / 否');
  return `<div class="tiles">${[
    tile('Accepted', '已受理', fmt(s.payments_accepted), undefined),
    tile('Cleared', '已清算', fmt(s.payments_cleared), s.payments_cleared === s.payments_accepted),
    tile('Lost', '丢失', fmt(s.lost), s.lost === 0),
    tile('Double counted', '重复计入', fmt(s.double_counted), s.double_counted === 0),
    tile('Attacks caught', '拦截攻击', `${fmt(s.attacks_caught)} / ${fmt(s.attacks_attempted)}`, s.attacks_caught === s.attacks_attempted),
    tile('Books balanced', '账目平衡', yes(s.books_balanced), s.books_balanced),
    tile('Invariants ok', '不变量成立', yes(s.invariants_ok), s.invariants_ok),
  ].join('')}</div>`;
}

function scenarioTable(r: SimResult): string {
  const sc = r.scenario;
  const windows =
    sc.outages.length === 0
      ? 'none / 无'
      : sc.outages.map((w) => `${clockLabel(sc.startsAt, w.from)}–${clockLabel(sc.startsAt, w.to)}`).join(', ');
  const rows: [string, string, string][] = [
    ['Seed', '种子', String(sc.seed)],
    ['Holders', '持卡人', fmt(sc.holders)],
    ['Windows (terminals)', '窗口（终端）', fmt(sc.windows)],
    ['Simulated minutes', '模拟分钟数', `${fmt(sc.minutes)} (from / 起 ${sc.startsAt})`],
    ['Internet outages', '断网时段', windows],
    ['Loss per call', '每次调用丢包率', fmt(sc.faults.loss)],
    ['Duplicate per call', '每次调用重复率', fmt(sc.faults.duplicate)],
    ['Reorder per call', '每次调用乱序率', fmt(sc.faults.reorder)],
    ['Delay up to, ms', '最大延迟，毫秒', fmt(sc.faults.delayMs)],
    ['Crash per terminal-minute', '每终端每分钟崩溃率', fmt(sc.faults.crash)],
    ['Attackers', '攻击者', sc.attacks ? 'on / 开' : 'off / 关'],
    ['Payments attempted', '尝试支付', fmt(r.summary.payments_attempted)],
    ['Payments declined', '拒绝支付', fmt(r.summary.payments_declined)],
    ['Recovered after a power cut', '断电后恢复', fmt(r.summary.payments_recovered_after_power_cut)],
    ['Audit ok', '审计通过', r.summary.audit_ok ? 'yes / 是' : 'NO / 否'],
    ['Trace hash', '轨迹哈希', r.summary.trace_hash],
    ['Wall time, ms', '实际耗时，毫秒', fmt(r.summary.wall_ms)],
  ];
  return `<table>${rows.map(([en, zh, v]) => `<tr><th>${bi(en, zh)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

function invariantsList(invariants: readonly Invariant[]): string {
  if (invariants.length === 0) return `<p>${bi('No invariants were checked.', '未检查任何不变量。')}</p>`;
  const items = invariants
    .map(
      (inv) =>
        `<li class="${inv.ok ? 'ok' : 'bad'}"><b>${inv.ok ? '✓ ok / 成立' : '✗ FAILED / 不成立'}</b> <code>${escapeHtml(inv.name)}</code>` +
        `${inv.detail === '' ? '' : ` — ${escapeHtml(inv.detail)}`}</li>`,
    )
    .join('');
  return `<ul class="invariants">${items}</ul>`;
}

function attacksTable(attacks: SimResult['attacks']): string {
  const entries = Object.entries(attacks).filter((e): e is [AttackKind, AttackTally] => e[1] !== undefined);
  if (entries.length === 0) return `<p>${bi('No attacks ran.', '未进行攻击。')}</p>`;
  const head = `<tr><th>${bi('Kind', '类型')}</th><th>${bi('Attempted', '尝试')}</th><th>${bi('Declined at the counter', '柜台拒绝')}</th><th>${bi('Flagged at clearing', '清算标记')}</th><th>${bi('Missed', '漏过')}</th><th>${bi('Unrecovered, fen', '未追回，分')}</th></tr>`;
  const body = entries
    .map(
      ([kind, t]) =>
        `<tr class="${t.missed === 0 ? '' : 'bad'}"><td><code>${escapeHtml(kind)}</code></td><td class="n">${fmt(t.attempted)}</td><td class="n">${fmt(t.declined)}</td>` +
        `<td class="n">${fmt(t.flagged)}</td><td class="n">${fmt(t.missed)}</td><td class="n">${fmt(t.unrecoveredFen)}</td></tr>`,
    )
    .join('');
  return `<table>${head}${body}</table>`;
}

/** The report's stylesheet, for a page that embeds `reportBody` (the bench's HTML does). */
export const REPORT_CSS = `.duet-sim{font:14px system-ui,"PingFang SC","Microsoft YaHei",sans-serif;color:#1f2328;max-width:980px}
.duet-sim h1{font-size:22px}.duet-sim h2{font-size:17px;margin-top:1.6em;border-bottom:1px solid #d0d7de}
.duet-sim .tiles{display:flex;flex-wrap:wrap;gap:10px}.duet-sim .tile{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.duet-sim .tile .v{font-size:22px;font-weight:600}.duet-sim .tile .k{font-size:12px;color:#57606a}
.duet-sim .tile.ok{border-color:${GOOD};background:#dafbe1}.duet-sim .tile.bad{border-color:${BAD};background:#ffebe9}
.duet-sim table{border-collapse:collapse}.duet-sim td,.duet-sim th{border:1px solid #d0d7de;padding:3px 9px;text-align:left}
.duet-sim td.n{text-align:right;font-variant-numeric:tabular-nums}.duet-sim tr.bad td{background:#ffebe9}
.duet-sim ul.invariants{list-style:none;padding:0}.duet-sim li.ok b{color:${GOOD}}.duet-sim li.bad b{color:${BAD}}
.duet-sim figure{margin:1em 0}.duet-sim figcaption{font-weight:600;margin-bottom:4px}.duet-sim svg{width:100%;height:auto;max-width:${CHART_W}px}
.duet-sim svg text{font:11px system-ui,sans-serif;fill:#57606a}.duet-sim .ytick{text-anchor:end}.duet-sim .xtick{text-anchor:middle}
.duet-sim .label{text-anchor:end;fill:#1f2328}.duet-sim .grid{stroke:#eaeef2}.duet-sim .line{fill:none;stroke-width:1.8}
.duet-sim .outage{fill:#fff1cc}.duet-sim .bar{fill:#54aeff}.duet-sim .bar.loss{fill:#ff8182}.duet-sim .mark{stroke-width:1.5;stroke-dasharray:4 3}
.duet-sim pre{background:#f6f8fa;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}`;

/** The report without the page around it: one `<section class="duet-sim">`, styled by REPORT_CSS. */
export function reportBody(r: SimResult): string {
  const sc = r.scenario;
  const s = r.series;
  const verdict = r.summary.invariants_ok ? bi('every invariant holds', '所有不变量成立') : bi('INVARIANTS FAILED', '不变量不成立');
  return `<section class="duet-sim">
<h1>${bi('Duet lunch-rush simulation', 'Duet 午餐高峰模拟')} — ${bi('seed', '种子')} ${escapeHtml(String(sc.seed))}: ${verdict}</h1>
${tiles(r)}
<h2>${bi('Replay', '重放')}</h2>
<pre><code>${escapeHtml(r.summary.replay)}</code></pre>
<h2>${bi('Scenario', '场景')}</h2>
${scenarioTable(r)}
<h2>${bi('Invariants', '不变量')}</h2>
${invariantsList(r.invariants)}
<h2>${bi('Attacks by kind', '按类型统计的攻击')}</h2>
${attacksTable(r.attacks)}
<h2>${bi('Through the hour', '整点时段内')}</h2>
${timeChart({
  title: 'Payments per minute / 每分钟支付笔数',
  lines: [{ label: 'payments / 支付', values: s.paymentsPerMinute, color: '#0969da' }],
  minutes: sc.minutes,
  startsAt: sc.startsAt,
  outages: sc.outages,
})}
${timeChart({
  title: 'Queue length, people waiting / 排队人数',
  lines: [{ label: 'queue / 排队', values: s.queueLength, color: '#8250df' }],
  minutes: sc.minutes,
  startsAt: sc.startsAt,
  outages: sc.outages,
})}
${timeChart({
  title: 'Upload backlog, records not yet acknowledged / 上传积压，未确认的记录',
  lines: [{ label: 'backlog / 积压', values: s.uploadBacklog, color: '#bc4c00' }],
  minutes: sc.minutes,
  startsAt: sc.startsAt,
  outages: sc.outages,
})}
<h2>${bi('Decisions and losses', '决策与损失')}</h2>
${latencyChart(s.latencyMs)}
${lossesChart(s.lossesByCause)}
</section>`;
}

/** The whole report as one self-contained HTML page. */
export function renderReport(r: SimResult): string {
  const title = `Duet sim seed ${r.summary.seed} / Duet 模拟 种子 ${r.summary.seed}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{margin:2em}${REPORT_CSS}</style>
</head><body>
${reportBody(r)}
</body></html>
`;
}
