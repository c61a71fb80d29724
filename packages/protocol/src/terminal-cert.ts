/**
 * The terminal certificate: a terminal-CA key binds a terminal id and its key (the PSAM role) to a
 * merchant, a scene, a campus and a location. Every record the terminal signs is checked against it.
 */
import { concatBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { checkValidity, readHeader, readValidity, writeHeader } from './header.js';
import { LABEL_MAX_BYTES } from './limits.js';
import { type Scene, sceneFromId, sceneId } from './scene.js';
import type { CryptoProvider, Signer, SuiteName } from './suites.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SUITE_ID, SUITES, suiteFromId } from './suites.js';
import { findTrustedKey, type TrustListBody } from './trust-list.js';

export interface TerminalCertificateBody {
  readonly caSuite: SuiteName;
  readonly caKeyId: number;
  readonly terminalSuite: SuiteName;
  readonly terminalId: number;
  readonly merchantId: number;
  readonly scene: Scene;
  readonly campus: number;
  /** A short human label: "North canteen, window 3". */
  readonly location: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly terminalPublicKey: Uint8Array;
}

export interface TerminalCertificate extends TerminalCertificateBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const TERMINAL_CERT_LABEL = label('duet/terminal-certificate/v1');

function encodeBody(b: TerminalCertificateBody): Uint8Array {
  if (b.terminalId < 1) throw new ProtocolError('bad_value', 'terminal certificate: terminal_id 0');
  if (b.notAfter <= b.notBefore) throw new ProtocolError('bad_value', 'terminal certificate: not_after <= not_before');
  const w = new Writer(160);
  writeHeader(w, 'terminalCertificate');
  w.u8(SUITE_ID[b.caSuite], 'ca_suite').u16(b.caKeyId, 'ca_key_id').u8(SUITE_ID[b.terminalSuite], 'terminal_suite');
  w.u32(b.terminalId, 'terminal_id').u32(b.merchantId, 'merchant_id').u8(sceneId(b.scene), 'scene').u16(b.campus, 'campus');
  w.text8(b.location, LABEL_MAX_BYTES, 'location');
  w.u32(b.notBefore, 'not_before').u32(b.notAfter, 'not_after');
  w.bytes(b.terminalPublicKey, PUBLIC_KEY_BYTES[b.terminalSuite], 'terminal_public_key');
  return w.finish();
}

export async function signTerminalCertificate(body: TerminalCertificateBody, ca: Signer): Promise<TerminalCertificate> {
  if (ca.suite !== body.caSuite) throw new ProtocolError('unknown_suite', 'terminal certificate: CA signer suite differs');
  const signed = encodeBody(body);
  const signature = await ca.sign(concatBytes(TERMINAL_CERT_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed: bytes.subarray(0, signed.length) };
}

export function decodeTerminalCertificate(input: Uint8Array): TerminalCertificate {
  const bytes = input.slice();
  const r = new Reader(bytes, 'terminal_certificate');
  readHeader(r, 'terminalCertificate');
  const caSuite = suiteFromId(r.u8('ca_suite'), 'ca_suite');
  const caKeyId = r.u16('ca_key_id');
  const terminalSuite = suiteFromId(r.u8('terminal_suite'), 'terminal_suite');
  const terminalId = r.u32('terminal_id');
  if (terminalId < 1) throw new ProtocolError('bad_value', 'terminal certificate: terminal_id 0');
  const merchantId = r.u32('merchant_id');
  const scene = sceneFromId(r.u8('scene'), 'scene');
  const campus = r.u16('campus');
  const location = r.text8('location', LABEL_MAX_BYTES);
  const { notBefore, notAfter } = readValidity(r, 'terminal certificate');
  const terminalPublicKey = r.bytesView(PUBLIC_KEY_BYTES[terminalSuite], 'terminal_public_key');
  const signed = r.since(0);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  r.end();
  return {
    caSuite,
    caKeyId,
    terminalSuite,
    terminalId,
    merchantId,
    scene,
    campus,
    location,
    notBefore,
    notAfter,
    terminalPublicKey,
    signature,
    bytes,
    signed,
  };
}

/** Verifies the CA's signature and, if `nowS` is given, the certificate's validity at that time. */
export async function verifyTerminalCertificate(
  cert: TerminalCertificate,
  trust: TrustListBody,
  crypto: CryptoProvider,
  nowS?: number,
): Promise<void> {
  const key = findTrustedKey(trust, cert.caKeyId, 'terminal_ca', cert.caSuite, cert.notBefore, cert.notAfter);
  const ok = await crypto.suite(cert.caSuite).verify(key.publicKey, concatBytes(TERMINAL_CERT_LABEL, cert.signed), cert.signature);
  if (!ok) throw new ProtocolError('bad_signature', `terminal certificate ${cert.terminalId}: CA signature`);
  if (nowS !== undefined) checkValidity(cert, nowS, 0, `terminal certificate ${cert.terminalId}`);
}

const ACTIVATION_LABEL = new TextEncoder().encode('duet/terminal-activation/v1\0');

/** The bytes a terminal signs with its new key to prove it holds it when activating. */
export function activationProofMessage(code: string, suite: SuiteName, publicKey: Uint8Array): Uint8Array {
  const c = new TextEncoder().encode(code.toUpperCase().replace(/[^A-Z0-9]/g, ''));
  return concatBytes(ACTIVATION_LABEL, new Uint8Array([SUITES.indexOf(suite) + 1, c.length]), c, publicKey);
}
