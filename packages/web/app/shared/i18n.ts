/**
 * Chinese and English in every screen. Each text is written where it is used, in both languages
 * (`t('Pay', '付款')`), so no key can go missing; the choice is kept per browser and switchable.
 */
import { useEffect, useState } from 'preact/hooks';

export type Lang = 'zh' | 'en';
const KEY = 'duet.lang';
const listeners = new Set<(l: Lang) => void>();

function initial(): Lang {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === 'zh' || saved === 'en') return saved;
  } catch {
    // storage may be unavailable (private mode): fall through to the browser's language
  }
  return typeof navigator !== 'undefined' && navigator.language.toLowerCase().startsWith('en') ? 'en' : 'zh';
}

let current: Lang = initial();

export function lang(): Lang {
  return current;
}

export function setLang(l: Lang): void {
  current = l;
  try {
    localStorage.setItem(KEY, l);
  } catch {
    // not kept, still switched
  }
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
  for (const f of listeners) f(l);
}

/** The text in the current language. */
export function t(en: string, zh: string): string {
  return current === 'zh' ? zh : en;
}

/** Words of an API error or any {en, zh} pair. */
export function words(w: { readonly en: string; readonly zh: string }): string {
  return current === 'zh' ? w.zh : w.en;
}

/** Re-renders the calling component when the language changes. */
export function useLang(): Lang {
  const [l, set] = useState(current);
  useEffect(() => {
    listeners.add(set);
    return () => {
      listeners.delete(set);
    };
  }, []);
  return l;
}

/** Dates and times as people on campus read them (Beijing time). */
export function formatTime(epochS: number, withDate = false): string {
  const d = new Date(epochS * 1000);
  return d.toLocaleString(current === 'zh' ? 'zh-CN' : 'en-GB', {
    timeZone: 'Asia/Shanghai',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    ...(withDate ? { year: 'numeric', month: '2-digit', day: '2-digit' } : {}),
  });
}
