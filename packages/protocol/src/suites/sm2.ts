/**
 * The `sm2` signature suite: SM2 digital signatures with SM3 (GB/T 32918.2-2016 = GM/T 0003.2-2012)
 * on the recommended curve of GB/T 32918.5-2017 = GM/T 0003.5-2012, with the user id and Z_A of
 * GM/T 0009-2012, so that signatures verify in other SM2 implementations.
 *
 * Wire forms (docs/sm2.md): public key = 33-byte SEC1 compressed point, signature = r||s (32 bytes
 * each, big-endian), private key = the 32-byte scalar d with 1 <= d <= n-2.
 *
 * Curve arithmetic is @noble/curves' audited short-Weierstrass module, given the standard's curve
 * parameters; nothing here does field or point arithmetic by hand. Only the SM2 equations on top
 * (Z_A, e, r, s, and the verification sum) are written here, step by step as the standard numbers
 * them. Pure JS: runs in the browser; Node injects its native SM3 (see `Sm2SuiteOptions.sm3`).
 */
import { getMinHashLength, mapHashToField } from '@noble/curves/abstract/modular.js';
import { type WeierstrassPoint, type WeierstrassPointCons, weierstrass } from '@noble/curves/abstract/weierstrass.js';
import { concatBytes, fromHex, toHex } from '../bytes.js';
import { ProtocolError } from '../errors.js';
import type { GenerateOptions, Signer, SuiteImpl } from '../suites.js';
import { PRIVATE_KEY_BYTES } from '../suites.js';
import { isSm3, type Sm3, sm3 } from './sm3.js';

export { type Sm3, sm3 } from './sm3.js';

/** y² = x³ + ax + b over F_p, base point G of prime order n, cofactor 1 (all SM2 curves). */
export interface Sm2CurveParams {
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly n: bigint;
  readonly Gx: bigint;
  readonly Gy: bigint;
}

/** The recommended curve, GB/T 32918.5-2017 clause 3 ("sm2p256v1", OID 1.2.156.10197.1.301). */
export const SM2_CURVE: Sm2CurveParams = Object.freeze({
  p: 0xfffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffffn,
  a: 0xfffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffcn,
  b: 0x28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93n,
  n: 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n,
  Gx: 0x32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7n,
  Gy: 0xbc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0n,
});

/** The user id assumed when none is agreed (GM/T 0009-2012), as ASCII. */
export const SM2_DEFAULT_USER_ID = '1234567812345678';

/** ENTL, the id's length in bits, is two bytes: at most 65,535 bits, so 8,191 whole bytes. */
export const SM2_USER_ID_BYTES_MAX = 8191;

/** A broken random source could make every nonce unusable; a real one needs a second try with probability ~2^-255. */
const SIGN_ATTEMPTS_MAX = 8;

type Point = WeierstrassPoint<bigint>;

/** One curve's point type and the constants SM2 needs from it. Built once per parameter set. */
interface Curve {
  readonly params: Sm2CurveParams;
  readonly Point: WeierstrassPointCons<bigint>;
  /** Bytes of a field element (coordinates) and of a scalar (d, k, r, s). */
  readonly fieldBytes: number;
  readonly scalarBytes: number;
  /** a || b || xG || yG: the curve's part of Z_A. */
  readonly zaCurvePart: Uint8Array;
}

function makeCurve(params: Sm2CurveParams): Curve {
  const Point = weierstrass({ p: params.p, n: params.n, h: 1n, a: params.a, b: params.b, Gx: params.Gx, Gy: params.Gy });
  const { Fp, Fn } = Point;
  return {
    params,
    Point,
    fieldBytes: Fp.BYTES,
    scalarBytes: Fn.BYTES,
    zaCurvePart: concatBytes(Fp.toBytes(params.a), Fp.toBytes(params.b), Fp.toBytes(params.Gx), Fp.toBytes(params.Gy)),
  };
}

let recommendedCurve: Curve | undefined;
function curveFor(params: Sm2CurveParams): Curve {
  if (params !== SM2_CURVE) return makeCurve(params);
  recommendedCurve ??= makeCurve(SM2_CURVE);
  return recommendedCurve;
}

function toBig(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${toHex(bytes)}`);
}

function toFixedBytes(v: bigint, length: number): Uint8Array {
  return fromHex(v.toString(16).padStart(2 * length, '0'));
}

function checkUserId(userId: Uint8Array): void {
  if (userId.length > SM2_USER_ID_BYTES_MAX) {
    throw new ProtocolError('too_large', `sm2 user id: ${userId.length} bytes > ${SM2_USER_ID_BYTES_MAX}`);
  }
}

function defaultRandomBytes(length: number): Uint8Array {
  const c = globalThis.crypto;
  if (typeof c?.getRandomValues !== 'function') {
    throw new ProtocolError('bad_value', 'sm2: this runtime has no crypto.getRandomValues; pass randomBytes');
  }
  return c.getRandomValues(new Uint8Array(length));
}

/**
 * The SM2 signature equations on one curve with one SM3. Internal: the suite and `sm2Scheme` are
 * the ways in. Scalars are bigints here; bytes are parsed and range-checked before they arrive.
 */
class Sm2Math {
  constructor(
    readonly curve: Curve,
    private readonly hash: Sm3,
  ) {}

  /** A private key is valid when 1 <= d <= n-2 (d = n-1 would make 1+d non-invertible). */
  parsePrivateKey(raw: Uint8Array): bigint {
    if (raw.length !== this.curve.scalarBytes) {
      throw new ProtocolError('bad_key', `sm2 private key: ${raw.length} bytes, expected ${this.curve.scalarBytes}`);
    }
    const d = toBig(raw);
    if (d < 1n || d > this.curve.params.n - 2n) throw new ProtocolError('bad_key', 'sm2 private key: not in [1, n-2]');
    return d;
  }

  /** The point of a compressed public key, or undefined when it is not one (wrong length or prefix, x >= p, no square root, infinity). */
  parsePublicKey(raw: Uint8Array): Point | undefined {
    if (raw.length !== 1 + this.curve.fieldBytes || (raw[0] !== 0x02 && raw[0] !== 0x03)) return undefined;
    try {
      const P = this.curve.Point.fromBytes(raw); // decompresses and asserts the point is on the curve
      return P.is0() ? undefined : P;
    } catch {
      return undefined;
    }
  }

  publicPoint(d: bigint): Point {
    return this.curve.Point.BASE.multiply(d);
  }

  /** Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GB/T 32918.2 clause 5.5. */
  za(P: Point, userId: Uint8Array): Uint8Array {
    checkUserId(userId);
    const entl = userId.length * 8;
    const { x, y } = P.toAffine();
    const { Fp } = this.curve.Point;
    return this.hash(concatBytes(Uint8Array.of(entl >>> 8, entl & 0xff), userId, this.curve.zaCurvePart, Fp.toBytes(x), Fp.toBytes(y)));
  }

  /** A1-A2: e = SM3(Z_A || M) read as an integer. */
  e(za: Uint8Array, message: Uint8Array): bigint {
    return toBig(this.hash(concatBytes(za, message)));
  }

  /** (1 + d)^-1 mod n, which every signature by d needs: computed once per key. */
  inverseOfOnePlus(d: bigint): bigint {
    return this.curve.Point.Fn.inv(d + 1n);
  }

  /**
   * A4-A7 for one nonce k in [1, n-1]: r = (e + x1) mod n, s = (1+d)^-1 (k - r d) mod n. Returns
   * undefined when the standard says to pick another k (r = 0, r + k = n, or s = 0).
   */
  signWithK(d: bigint, dInv: bigint, e: bigint, k: bigint): Uint8Array | undefined {
    const { Point, params, scalarBytes } = this.curve;
    const { Fn } = Point;
    const x1 = Point.BASE.multiply(k).toAffine().x;
    const r = Fn.create(e + x1);
    if (r === 0n || r + k === params.n) return undefined;
    const s = Fn.mul(dInv, Fn.sub(k, Fn.mul(r, d)));
    if (s === 0n) return undefined;
    return concatBytes(toFixedBytes(r, scalarBytes), toFixedBytes(s, scalarBytes));
  }

  /** A3: a uniformly random scalar in [1, order-1], from the injected random source. */
  randomScalar(randomBytes: (length: number) => Uint8Array, order: bigint): bigint {
    const length = getMinHashLength(order);
    const seed = randomBytes(length);
    if (!(seed instanceof Uint8Array) || seed.length !== length) {
      throw new ProtocolError('bad_value', `sm2: the random source returned ${String(seed?.length)} bytes, expected ${length}`);
    }
    return toBig(mapHashToField(seed, order));
  }

  sign(d: bigint, dInv: bigint, e: bigint, randomBytes: (length: number) => Uint8Array): Uint8Array {
    for (let attempt = 0; attempt < SIGN_ATTEMPTS_MAX; attempt++) {
      const signature = this.signWithK(d, dInv, e, this.randomScalar(randomBytes, this.curve.params.n));
      if (signature !== undefined) return signature;
    }
    throw new ProtocolError('bad_value', `sm2 sign: no usable nonce in ${SIGN_ATTEMPTS_MAX} tries; the random source is broken`);
  }

  /** B1-B7 of GB/T 32918.2 clause 7.1. Any malformed input is simply false. */
  verify(P: Point, e: bigint, signature: Uint8Array): boolean {
    const { Point: C, scalarBytes } = this.curve;
    const { Fn } = C;
    if (signature.length !== 2 * scalarBytes) return false;
    const r = toBig(signature.subarray(0, scalarBytes));
    const s = toBig(signature.subarray(scalarBytes));
    if (!Fn.isValidNot0(r) || !Fn.isValidNot0(s)) return false; // B1, B2: r, s in [1, n-1]
    const t = Fn.add(r, s); // B5
    if (t === 0n) return false;
    // B6: [s]G + [t]P_A. Public scalars, so variable time is fine; two products rather than
    // mulAddUnsafe so that G's precomputed table (and any future one for a hot key) is used.
    const X = C.BASE.multiplyUnsafe(s).add(P.multiplyUnsafe(t));
    if (X.is0()) return false;
    return Fn.create(e + X.toAffine().x) === r; // B7
  }
}

/**
 * The SM2 operations on any SM2 curve, on bytes: for known-answer tests (the standard's
 * examples use their own curve) and for tools. Protocol code uses `sm2Suite`.
 */
export interface Sm2Scheme {
  readonly curve: Sm2CurveParams;
  /** The compressed public key of a private key. Throws ProtocolError(bad_key) when d is not in [1, n-2]. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** True for a compressed point on the curve that is not infinity. */
  isValidPublicKey(publicKey: Uint8Array): boolean;
  /** Z_A of a compressed public key and a user id. Throws ProtocolError(bad_key, too_large). */
  za(publicKey: Uint8Array, userId: Uint8Array): Uint8Array;
  /**
   * Signs with the caller's nonce k (big-endian, in [1, n-1]), to reproduce the standard's
   * examples. Never use it to sign anything real: a k that is repeated or guessable reveals d.
   * Throws ProtocolError(bad_value) for a k out of range or one the standard would reject.
   */
  signWithFixedK(privateKey: Uint8Array, message: Uint8Array, userId: Uint8Array, k: Uint8Array): Uint8Array;
  /** True only for a valid r||s signature. Never throws. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, userId: Uint8Array): boolean;
}

export function sm2Scheme(curve: Sm2CurveParams = SM2_CURVE, hash: Sm3 = sm3): Sm2Scheme {
  const math = new Sm2Math(curveFor(curve), hash);
  const pointOf = (publicKey: Uint8Array): Point => {
    const P = math.parsePublicKey(publicKey);
    if (P === undefined) throw new ProtocolError('bad_key', 'sm2 public key: not a compressed point on the curve');
    return P;
  };
  return {
    curve,
    publicKey: (privateKey) => math.publicPoint(math.parsePrivateKey(privateKey)).toBytes(true),
    isValidPublicKey: (publicKey) => math.parsePublicKey(publicKey) !== undefined,
    za: (publicKey, userId) => math.za(pointOf(publicKey), userId),
    signWithFixedK(privateKey, message, userId, k) {
      const d = math.parsePrivateKey(privateKey);
      const kk = toBig(k);
      if (k.length !== math.curve.scalarBytes || !math.curve.Point.Fn.isValidNot0(kk)) {
        throw new ProtocolError('bad_value', 'sm2 nonce: not a scalar in [1, n-1]');
      }
      const e = math.e(math.za(math.publicPoint(d), userId), message);
      const signature = math.signWithK(d, math.inverseOfOnePlus(d), e, kk);
      if (signature === undefined) throw new ProtocolError('bad_value', 'sm2 nonce: the standard rejects this k for this message');
      return signature;
    },
    verify(publicKey, message, signature, userId) {
      try {
        const P = math.parsePublicKey(publicKey);
        return P !== undefined && math.verify(P, math.e(math.za(P, userId), message), signature);
      } catch {
        return false;
      }
    },
  };
}

export interface Sm2SuiteOptions {
  /** SM3 implementation; default the pure-JS `sm3`. Node passes OpenSSL's native one for speed. */
  readonly sm3?: Sm3;
  /** The distinguishing identifier hashed into Z_A; default ASCII "1234567812345678". At most 8,191 bytes. */
  readonly userId?: Uint8Array;
  /** Source of key and nonce randomness; default crypto.getRandomValues. Must be a CSPRNG outside tests. */
  readonly randomBytes?: (length: number) => Uint8Array;
}

/**
 * The `sm2` SuiteImpl. Throws ProtocolError(bad_value) when the injected sm3 is not SM3 and
 * ProtocolError(too_large) for an over-long user id: both are configuration errors, found at start.
 */
export function sm2Suite(options: Sm2SuiteOptions = {}): SuiteImpl {
  const hash = options.sm3 ?? sm3;
  if (hash !== sm3 && !isSm3(hash)) {
    throw new ProtocolError('bad_value', 'sm2Suite: the injected sm3 does not give the GB/T 32905 example digest');
  }
  const userId = options.userId?.slice() ?? new TextEncoder().encode(SM2_DEFAULT_USER_ID);
  checkUserId(userId);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const math = new Sm2Math(curveFor(SM2_CURVE), hash);
  const { n } = SM2_CURVE;

  const signer = (d: bigint, keyOptions?: GenerateOptions): Signer => {
    const P = math.publicPoint(d);
    const za = math.za(P, userId);
    const dInv = math.inverseOfOnePlus(d);
    // A pure-JS key cannot be hidden from the page; "non-extractable" here means export is refused.
    const exported = keyOptions?.extractable === false ? undefined : toFixedBytes(d, PRIVATE_KEY_BYTES);
    return {
      suite: 'sm2',
      publicKey: P.toBytes(true),
      sign: async (message) => math.sign(d, dInv, math.e(za, message), randomBytes),
      exportPrivateKey: async () => exported?.slice(),
    };
  };

  return {
    name: 'sm2',
    // [1, n-2]: mapHashToField(seed, n - 1) lands in [1, (n-1) - 1].
    generate: async (options) => signer(math.randomScalar(randomBytes, n - 1n), options),
    importPrivateKey: async (raw, options) => signer(math.parsePrivateKey(raw), options),
    async verify(publicKey, message, signature) {
      try {
        const P = math.parsePublicKey(publicKey);
        return P !== undefined && math.verify(P, math.e(math.za(P, userId), message), signature);
      } catch {
        return false; // an injected sm3 that throws must not turn a bad input into an exception
      }
    },
    isValidPublicKey: (publicKey) => math.parsePublicKey(publicKey) !== undefined,
  };
}
