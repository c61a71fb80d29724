/**
 * Every count, size and time bound of the wallet, with its unit and why. One place, so a reviewer
 * can weigh them together.
 */

/**
 * Counters reserved durably per store write. A write costs an fsync (milliseconds on a phone); a
 * crash skips at most this many counters. 64 means one write per 64 codes, and 2^32 counters still
 * last 67 million crashes.
 */
export const COUNTER_BLOCK = 64;

/** The largest block a caller may ask for: a crash must never skip a noticeable share of 2^32. */
export const COUNTER_BLOCK_MAX = 1_000_000;

/**
 * Credentials kept at once: the one in use and the next one during a renewal overlap. More would
 * only be older ones, which can never again be the newest valid one.
 */
export const CREDENTIALS_HELD_MAX = 2;

/** Renew when less than this is left (24 h): a holder offline for a day still has a valid credential. */
export const RENEW_AHEAD_S = 24 * 3600;

/** …or when less than this share of the validity is left (25 %), for credentials longer than 4 days. */
export const RENEW_AHEAD_PERCENT = 25;

/** Platform challenges for proof of possession: at least 128 bits of randomness (DESIGN §16)… */
export const CHALLENGE_MIN_BYTES = 16;

/** …and short enough that a hostile platform cannot make the device sign a large blob. */
export const CHALLENGE_MAX_BYTES = 64;

/** The encoded wallet state: two credentials in hex and a few numbers fit in well under 2 KiB. */
export const STATE_TEXT_MAX_BYTES = 16 * 1024;

/** The device key file: one suite name and two keys in hex, a few hundred bytes. */
export const KEY_TEXT_MAX_BYTES = 1024;
