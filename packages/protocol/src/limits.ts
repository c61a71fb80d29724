/**
 * Every size, count and time bound of the wire formats, with its unit and why. Decoders check these
 * before allocating anything, so hostile input cannot make a terminal allocate or loop without end.
 */

/** QR text we will even look at. A v1 code is ~316 characters; 1,024 leaves room for v2 and stops abuse. */
export const QR_TEXT_MAX_CHARS = 1024;

/** Credential location/label strings are short tags, not prose. */
export const LABEL_MAX_BYTES = 64;

/** Keys in one trust list: a few issuer, CA and list keys across two rotations fits in far fewer. */
export const TRUST_LIST_KEYS_MAX = 64;

/** Evidence carried inside one record (a code is 208 B; card MAC data and face match data are smaller). */
export const RECORD_EVIDENCE_MAX_BYTES = 1024;

/** Records in one upload batch: bounded so one request stays well under 1 MiB and one transaction. */
export const BATCH_RECORDS_MAX = 1000;

/** One upload batch in bytes (1,000 records of at most ~1.2 KiB each). */
export const BATCH_MAX_BYTES = 1_400_000;

/** Deny-list entries in one signed list. The terminal must hold 1,000,000; 4,000,000 leaves headroom. */
export const DENY_LIST_ENTRIES_MAX = 4_000_000;

/** Scene rules in one risk policy: at most one per scene, and there are four scenes. */
export const POLICY_RULES_MAX = 4;

/** Largest u32 seconds value we accept as a time: 2106-02-07. Times are seconds since the Unix epoch. */
export const TIME_MAX_S = 0xffff_ffff;

/** A record sequence number is a u32: a terminal at one payment a second runs 136 years before it wraps. */
export const SEQUENCE_MAX = 0xffff_ffff;

/** Code counters are u32; the wallet refuses to make a code past this (it renews first). */
export const CODE_COUNTER_MAX = 0xffff_ffff;

/** Serials and holder pseudonyms are u48: unique across the platform's lifetime, exact in JS numbers. */
export const ID48_MAX = 2 ** 48 - 1;
