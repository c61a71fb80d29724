/**
 * @duet/protocol: Duet's wire formats, signature suites and encodings. Pure (no I/O); runs in Node
 * and the browser. Crypto comes from an injected CryptoProvider: `webCrypto()` here, `nodeCrypto()`
 * from `@duet/protocol/node`. The byte layouts are specified in docs/protocol.md.
 */
export * from './base45.js';
export { concatBytes, equalBytes, fromHex, toHex } from './bytes.js';
export * from './code.js';
export * from './credential.js';
export * from './deny-list.js';
export * from './errors.js';
export { FORMAT_VERSION, OBJECT_TYPE, type ObjectType, type SignerRef, checkValidity } from './header.js';
export * from './limits.js';
export * from './money.js';
export * from './policy.js';
export * from './qr.js';
export * from './record.js';
export * from './request-auth.js';
export * from './scene.js';
export * from './suites.js';
export * from './terminal-cert.js';
export * from './trust-list.js';
export { webCrypto, webCryptoNative, webCryptoSigner } from './web.js';
