/** Every bound of the terminal core, with its unit and why. */

/** Records per upload batch: small enough for one request and one platform transaction, large enough to drain 2,000 records in 10 requests. */
export const UPLOAD_BATCH_RECORDS = 200;

/** First retry after a failed upload; doubled each failure (with full jitter) up to the cap. */
export const UPLOAD_BACKOFF_BASE_MS = 1_000;
/** A terminal that has been offline for hours still tries every five minutes. */
export const UPLOAD_BACKOFF_MAX_MS = 300_000;

/** Default online authorization budget (DESIGN §6); the risk policy may set another. */
export const ONLINE_BUDGET_MS_DEFAULT = 300;
/** Consecutive online failures (timeouts, errors, overloads) that open the circuit breaker. */
export const BREAKER_FAILURES_TO_OPEN = 3;
/** How long an open breaker sends every payment straight to the offline decision before one trial. */
export const BREAKER_OPEN_MS = 30_000;

/** Verified credentials remembered (each entry ~300 bytes: a canteen's whole population fits). */
export const CREDENTIAL_CACHE_ENTRIES = 50_000;

/** Largest amount a cashier can key: 99,999.99 yuan. Real offline caps are far lower; this is the keypad's bound. */
export const AMOUNT_MAX_FEN = 9_999_999;

/** A terminal clock earlier than its last record by more than this has jumped back: refuse until fixed. */
export const CLOCK_BACKWARD_TOLERANCE_S = 300;

/** Offset of the campus's local day from UTC, for per-day limits (China Standard Time). */
export const DAY_OFFSET_S_DEFAULT = 8 * 3600;

/** One request gets this long to be answered. A stuck connection is abandoned and retried instead of stalling upload. */
export const UPLOAD_TIMEOUT_MS_DEFAULT = 15_000;
/** How often to look again when nothing is pending. After a payment, `wake()` is quicker. */
export const UPLOAD_IDLE_POLL_MS_DEFAULT = 5_000;
/** flush() gives up after this many failed attempts in a row: about 15 s of backoff, enough to ride out a blip. */
export const UPLOAD_FLUSH_MAX_FAILURES_DEFAULT = 5;
