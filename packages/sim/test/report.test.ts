/** The simulator's HTML report: well formed, self-contained, carries the figures, escapes its text. */
import { describe, expect, it } from 'vitest';
import { clockLabel, escapeHtml, renderReport } from '../src/report.js';
import type { SimResult } from '../src/result.js';
import { fixtureResult } from './fixture.js';

const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link']);

/**
 * A small structural check in place of a full HTML parser: every element closes in order, SVG
 * self-closing tags count as closed, and nothing is left open at the end. Returns the tag names seen.
 */
function checkTree(html: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  const body = html.replace(/^<!doctype html>/i, '').replace(/<style>[\s\S]*?<\/style>/g, '<style></style>');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+(?:="[^"<>]*")?)*)\s*(\/?)>/g)) {
    const [, closing, name = '', , selfClose] = m;
    const tag = name.toLowerCase();
    if (closing === '/') {
      const open = stack.pop();
      if (open !== tag) throw new Error(`</${tag}> closes <${String(open)}>`);
    } else {
      seen.push(tag);
      if (selfClose !== '/' && !VOID.has(tag)) stack.push(tag);
    }
  }
  if (stack.length > 0) throw new Error(`left open: ${stack.join(' > ')}`);
  // Any "<" not starting a tag we matched would be unescaped text.
  const stray = body.replace(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+(?:="[^"<>]*")?)*)\s*(\/?)>/g, '');
  if (stray.includes('<') || stray.includes('>'))
    throw new Error(`stray angle bracket near ${stray.slice(stray.search(/[<>]/) - 40, stray.search(/[<>]/) + 40)}`);
  return seen;
}

describe('renderReport', () => {
  it('is one well-formed, self-contained page: no scripts, nothing fetched', () => {
    const html = renderReport(fixtureResult());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    const tags = checkTree(html);
    for (const t of ['html', 'head', 'body', 'style', 'svg', 'table', 'h1']) expect(tags).toContain(t);
    expect(tags).not.toContain('script');
    expect(tags).not.toContain('link');
    expect(tags).not.toContain('img');
    expect(html).not.toMatch(/(src|href)=/);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(tags.filter((t) => t === 'svg')).toHaveLength(5);
  });

  it('carries the headline figures, the scenario, the verdicts, the attacks and the replay command', () => {
    const r = fixtureResult({ seed: 7 });
    const html = renderReport(r);
    expect(html).toContain('1,481');
    expect(html).toContain('27 / 27');
    expect(html).toContain('Invariants ok / 不变量成立');
    expect(html).toContain('Payments per minute / 每分钟支付笔数');
    expect(html).toContain('accepted_cleared_once');
    expect(html).toContain('overspend_offline');
    expect(html).toContain('npm run sim -- --seed 7');
    expect(html).toContain('a1b2c3d4e5f60718');
    expect(html).toContain('p50 3.2 ms');
    expect(html).toContain('p99 14.5 ms');
    expect(html).toContain('overspend_written_off');
    expect(html).toContain('12:05–12:40');
    expect(html).not.toContain('tile bad');
  });

  it('shades every outage window on each chart over the hour', () => {
    const base = fixtureResult();
    const r: SimResult = {
      ...base,
      scenario: {
        ...base.scenario,
        outages: [
          { from: 5, to: 40 },
          { from: 50, to: 55 },
        ],
      },
    };
    const html = renderReport(r);
    // Three time charts × two windows, plus one legend swatch per chart.
    expect(html.match(/<rect class="outage" x="[\d.]+" y="14" width="[\d.]+" height="172">/g)).toHaveLength(6);
    expect(html).toContain('outage / 断网 12:50–12:55');
  });

  it('marks a failed invariant and its detail in red', () => {
    const html = renderReport(fixtureResult({ invariantsOk: false }));
    expect(html).toContain('tile bad');
    expect(html).toContain('✗ FAILED / 不成立');
    expect(html).toContain('purse 17 off by 250 fen');
    expect(html).toContain('INVARIANTS FAILED');
  });

  it('escapes text from the result: a <script> in the scenario stays text', () => {
    const base = fixtureResult();
    const evil = '<script>alert("x")</script>';
    const r: SimResult = {
      ...base,
      scenario: { ...base.scenario, startsAt: evil },
      summary: { ...base.summary, replay: `npm run sim -- ${evil}`, trace_hash: `'${evil}` },
      invariants: [{ name: evil, ok: false, detail: `a & b ${evil}` }],
      series: { ...base.series, lossesByCause: { [evil]: 5 } },
    };
    const html = renderReport(r);
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('a &amp; b');
    checkTree(html);
  });

  it('draws empty and all-zero series without crashing or NaN', () => {
    const base = fixtureResult();
    const empty: SimResult = {
      ...base,
      scenario: { ...base.scenario, outages: [], minutes: 0, attacks: false },
      invariants: [],
      attacks: {},
      series: {
        paymentsPerMinute: [],
        queueLength: [],
        uploadBacklog: [],
        latencyMs: { bucketsMs: [], counts: [], p50: 0, p99: 0 },
        lossesByCause: {},
      },
    };
    const zeros: SimResult = {
      ...base,
      series: {
        paymentsPerMinute: [0, 0, 0],
        queueLength: [0, 0, 0],
        uploadBacklog: [0, 0, 0],
        latencyMs: { bucketsMs: [1, 2], counts: [0, 0, 0], p50: 0, p99: 0 },
        lossesByCause: { none: 0 },
      },
    };
    for (const r of [empty, zeros]) {
      const html = renderReport(r);
      checkTree(html);
      expect(html).not.toMatch(/NaN|Infinity|undefined/);
    }
    expect(renderReport(empty)).toContain('no losses / 无损失');
    expect(renderReport(empty)).toContain('No attacks ran.');
  });
});

describe('report helpers', () => {
  it('labels minutes with the wall clock from the start label, wrapping midnight', () => {
    expect(clockLabel('12:00', 35)).toBe('12:35');
    expect(clockLabel('23:30', 45)).toBe('00:15');
    expect(clockLabel('noon', 5)).toBe('+5');
  });

  it('escapes the five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});
