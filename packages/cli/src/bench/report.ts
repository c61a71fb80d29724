/**
 * Writes the bench JSON as a self-contained HTML page: one table per group; the simulator's report
 * (its charts, from @duet/sim) follows when the sim group ran.
 */
import { REPORT_CSS } from '@duet/sim';

type Json = number | string | boolean | null | Json[] | { [k: string]: Json };

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

function rows(prefix: string, value: Json, out: [string, string][]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) rows(prefix === '' ? k : `${prefix}.${k}`, v, out);
  } else {
    out.push([prefix, typeof value === 'number' ? value.toLocaleString('en-US') : JSON.stringify(value)]);
  }
}

export function benchHtml(figures: { [k: string]: Json }, simReportBody = ''): string {
  const sections = Object.entries(figures)
    .map(([group, value]) => {
      const r: [string, string][] = [];
      rows('', value, r);
      const body = r.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${esc(v)}</td></tr>`).join('');
      return `<h2>${esc(group)}</h2><table><tr><th>figure / 指标</th><th>value / 数值</th></tr>${body}</table>`;
    })
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Duet benchmark / 基准测试</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
${simReportBody === '' ? '' : REPORT_CSS}</style>
</head><body><h1>Duet benchmark / 基准测试</h1>${sections}${simReportBody}</body></html>\n`;
}
