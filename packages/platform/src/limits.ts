/**
 * Every bound of the platform service, with its unit and why. Inputs are checked against these at
 * the boundary so a mistyped or hostile value is refused with a clear error instead of reaching the
 * books. A deployment may lower a money cap; raising one is a policy decision worth writing down.
 */

// ---------------------------------------------------------------------------------------------
// Ledger

/**
 * Balance rows of one busy account (a payable, top-up clearing): an entry adds to row `entry id mod
 * 32`. More rows than concurrent writers (a pool of 10 connections per process, a few processes)
 * keeps them from colliding; a read sums at most 32 rows. Purses always have exactly one row.
 */
export const LEDGER_BALANCE_SHARDS = 32;
/** Postings in one entry: a payment has at most five legs (subsidy, cash, credit, advance, payable); 16 leaves room for fees and splits. */
export const LEDGER_POSTINGS_PER_ENTRY_MAX = 16;
/** Entries in one postMany: a clearing batch of 1,000 records, in one transaction that stays short. */
export const LEDGER_BATCH_ENTRIES_MAX = 1_000;
/** Postings in one postMany: 4 parameters each, so 20,000 parameters, under SQLite's 32,766 per statement. */
export const LEDGER_BATCH_POSTINGS_MAX = 5_000;
/** An entry kind is a short tag such as `topup` or `online_payment`, not prose. */
export const LEDGER_KIND_MAX_CHARS = 32;
/** A reference names the business object behind an entry (`topup:17`, `record:42/1009`). */
export const LEDGER_REFERENCE_MAX_CHARS = 128;
/** Who posted: a staff login, `system`, or `terminal:42`. */
export const LEDGER_CREATED_BY_MAX_CHARS = 64;
/** A memo or reversal reason: one or two sentences a person reads in a statement or an audit. */
export const LEDGER_MEMO_MAX_CHARS = 256;

// ---------------------------------------------------------------------------------------------
// Purses

/**
 * One top-up, 1,000,000 fen (10,000 yuan): a whole semester of canteen meals is a few thousand
 * yuan, so anything larger is far more likely a slip (an extra zero at the cashier) than a need,
 * and a cap bounds what one mistaken or stolen cashier session can put into the books.
 */
export const TOPUP_MAX_FEN = 1_000_000;
/** One subsidy grant, 1,000,000 fen (10,000 yuan): a year of a needy student's meal subsidy is a few thousand yuan. */
export const SUBSIDY_GRANT_MAX_FEN = 1_000_000;
/**
 * A school credit line, 500,000 fen (5,000 yuan): a month of meals is about 1,000-1,500 yuan, so this
 * covers a semester's gap until a stipend arrives; the school carries the risk, so bound it.
 */
export const CREDIT_LINE_MAX_FEN = 500_000;
/**
 * The most a cash or subsidy purse may hold, 10,000,000 fen (100,000 yuan). Stored value is a
 * liability the operator holds for the payer; prepaid-value rules may require a deployment to set
 * this far lower. It also stops a runaway loop of top-ups from producing an absurd balance.
 */
export const PURSE_BALANCE_MAX_FEN = 10_000_000;

/** Idempotency keys: a UUID is 36 characters; 128 allows a caller's own prefix without storing essays. */
export const IDEMPOTENCY_KEY_MAX_CHARS = 128;
/** Characters an idempotency key may use: printable, no spaces, safe in logs and URLs. */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]+$/;

// ---------------------------------------------------------------------------------------------
// Online authorization

/**
 * The largest amount an online authorization accepts as well-formed: the terminal keypad's own
 * bound (99,999.99 yuan), so the platform never calls malformed what a cashier could key. The
 * payer's funds are what really limit it.
 */
export const ONLINE_AUTH_AMOUNT_MAX_FEN = 9_999_999;
/**
 * How far the payment time the terminal sends may be from the platform's clock. Online
 * authorization is real time: a code is good for about a minute, and terminals refuse offline use
 * when their clock has drifted this far, so a larger gap means a stale or forged request.
 */
export const ONLINE_AUTH_TIME_SKEW_MAX_S = 300;
/**
 * How long an online authorization waits for others to share its transaction (group commit). One
 * event-loop turn gathered about 1.4 requests per commit at 1,000/s here; a millisecond lowered the
 * p50 from 6.5–7.2 to 4.4–4.8 ms and the p99 from 47–82 to 44–48 ms in back-to-back runs. Well
 * inside a terminal's online budget (300 ms by default).
 */
export const ONLINE_AUTH_BATCH_WINDOW_MS = 1;
/**
 * Online authorizations decided in one transaction (group commit). A batch of 64 is a few
 * milliseconds of work, so the last request of a full batch still answers well inside a terminal's
 * 300 ms budget, and the transaction holds its locks only that long.
 */
export const ONLINE_AUTH_BATCH_MAX = 64;
/**
 * Authorizations waiting for a transaction in one process: 2,000 is two seconds at the 1,000/s
 * target, by which time the terminal has long given up and decided offline; past it the platform
 * answers 503 at once rather than let memory and latency grow without bound.
 */
export const ONLINE_AUTH_QUEUE_MAX = 2_000;
/** Terminal, merchant and holder ids are u48 (as the credential's holder field): exact in JS numbers. */
export const PLATFORM_ID_MAX = 2 ** 48 - 1;

// ---------------------------------------------------------------------------------------------
// Ledger seal: hash chain, signed roots, witness (ledger-seal.ts, audit.ts, routes-ledger.ts)

/**
 * Entries chained in one sealing transaction: 200 hashes and one bulk insert, a few ms, so the
 * transaction, and on SQLite the event loop it holds, stays short while online authorizations wait
 * (measured: 1,000 per transaction put the online-authorization p99 at about 145 ms). The sealer
 * yields to the event loop between transactions.
 */
export const LEDGER_SEAL_BATCH_MAX = 200;
/**
 * How far below the highest sealed entry id the sealer looks for entries committed late. On
 * PostgreSQL an id is taken at insert and its transaction may commit after higher ids did; a
 * posting transaction lives at most one statement timeout (30 s), which at the 1,000 entries/s
 * target is 30,000 ids. 100,000 is three times that; anything older is found by the full scan.
 */
export const LEDGER_SEAL_WINDOW_IDS = 100_000;
/** The background sealer runs this often: an entry is chained within seconds of its commit. */
export const LEDGER_SEAL_INTERVAL_MS = 1_000;
/**
 * Every this many runs (and on the first), the sealer scans the whole ledger for unsealed entries
 * instead of the window: about every 5 minutes at the default interval; a scan is one anti-join.
 */
export const LEDGER_SEAL_FULL_SCAN_EVERY = 100;
/** Sealing transactions in one run, at most: 100,000 entries, then the run yields to the next. */
export const LEDGER_SEAL_TXS_PER_RUN_MAX = 100;
/** Attempts of one sealing or root transaction that lost a race to another sealer (a unique violation). */
export const LEDGER_SEAL_ATTEMPTS_MAX = 8;
/**
 * An entry posted longer ago than this and still outside the chain is a break in the audit, not a
 * warning: the sealer runs every few seconds and a late commit is at most a statement timeout late.
 */
export const LEDGER_SEAL_GRACE_S = 600;
/** Default entries under one signed root (DESIGN §9 "every N entries"). */
export const LEDGER_ROOT_EVERY_ENTRIES = 1_000;
/** The most entries one root may cover: the witness fetches and hashes all of them before signing. */
export const LEDGER_ROOT_ENTRIES_MAX = 100_000;
/** A root is closed over whatever is sealed once its oldest entry waited this long (DESIGN §9 "every day"). */
export const LEDGER_ROOT_MAX_AGE_S = 86_400;
/** Positions per page of GET /v1/ledger/chain: about 0.5 MB of JSON with postings. */
export const LEDGER_CHAIN_PAGE_MAX = 1_000;
/** Roots per page of GET /v1/ledger/roots. */
export const LEDGER_ROOTS_PAGE_MAX = 100;
/** A witness key's name: who holds it, e.g. "Finance office, 2026 key". */
export const LEDGER_WITNESS_NAME_MAX_CHARS = 100;

// Recovery and statements (issue 5: arrears, collection, statements)

/**
 * Holders in one noteArrears call: clearing calls it once per batch of at most
 * LEDGER_BATCH_ENTRIES_MAX records, so at most that many payers.
 */
export const RECOVERY_NOTE_HOLDERS_MAX = LEDGER_BATCH_ENTRIES_MAX;
/**
 * Cases in one collection export: 5,000 rows is a file a collection agency's intake and a
 * spreadsheet open comfortably, and one transaction that marks them stays short. Older cases beyond
 * it go in the next export.
 */
export const COLLECTION_EXPORT_CASES_MAX = 5_000;
/** A page of the graduation-clearance list or of the case list: what one screen or API call shows. */
export const RECOVERY_PAGE_MAX = 500;
/**
 * Rows in one graduation-clearance CSV: a large university graduates about 10,000 a year, so 50,000
 * covers every owing holder of a campus with room; past it the caller narrows the filter.
 */
export const CLEARANCE_CSV_ROWS_MAX = 50_000;
/**
 * Days in one statement request: a month and a day, so a calendar month always fits; the query
 * reads every posting of the range, so the range is what bounds its cost.
 */
export const STATEMENT_DAYS_MAX = 31;
/** Entries in one page of a holder's history: a phone screen or two; older pages follow a cursor. */
export const HISTORY_PAGE_MAX = 100;
