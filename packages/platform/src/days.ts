/**
 * Calendar days as the campus lives them: Beijing time (the IANA zone Asia/Shanghai), UTC+08:00 all
 * year, with no daylight saving since 1991. A day "2026-03-01" runs from 2026-02-28T16:00:00Z up to,
 * not including, 2026-03-01T16:00:00Z. The offset is a constant, not a time-zone lookup: the
 * platform's days must not change with the server's own zone or its tz database.
 */
import { ApiError } from './errors.js';

export const BEIJING_OFFSET_S = 8 * 3_600;
export const DAY_S = 86_400;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The Beijing calendar day (YYYY-MM-DD) of a time in seconds since the epoch. */
export function beijingDay(s: number): string {
  return new Date((s + BEIJING_OFFSET_S) * 1000).toISOString().slice(0, 10);
}

/** The first second of a Beijing calendar day; refuses anything but a real YYYY-MM-DD date from 2000 on. */
export function beijingDayStartS(date: string, field = 'date'): number {
  const m = DATE.exec(date);
  const ms = m === null ? Number.NaN : Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  // Date.UTC rolls 2026-02-30 over to March: a date that does not come back unchanged is not real.
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date || ms < Date.UTC(2000, 0, 1)) {
    throw new ApiError('validation_failed', `${field} ${JSON.stringify(date)}: a calendar day YYYY-MM-DD from 2000-01-01`);
  }
  return ms / 1000 - BEIJING_OFFSET_S;
}
