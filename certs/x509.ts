/**
 * The one file that touches node-forge: it encodes X.509 v3 certificates (RFC 5280) as DER and has
 * them signed by Node's native crypto.
 *
 * Why not `forge.pki.createCertificate().sign()`: forge signs with RSA only (no ECDSA), and its
 * pure-JS RSA-2048 signature costs ~43 ms of blocked event loop per certificate on our hardware.
 * So forge is used here only as an ASN.1/DER encoder (`forge.asn1`), the subject public key comes
 * from a native `KeyObject` (any type Node knows), and the signature is made by `crypto.sign` in
 * its callback form (off the main thread, ~0.03 ms for P-256). Parsing is done elsewhere with
 * Node's `X509Certificate`; the only parsing here is pulling the raw subject Name out of a CA
 * certificate so that leaf issuers match it byte for byte (RFC 5280 §7.1 name chaining).
 *
 * Three exports: `buildCertificate`, `readIssuer`, `keyIdentifier`.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { SafespotError } from '../policy/errors.js';

const { asn1 } = forge;
type Asn1 = forge.asn1.Asn1;

/** One relative distinguished name attribute we write (UTF8String values). */
export interface NameAttribute {
  readonly type: 'CN' | 'O';
  readonly value: string;
}

/** Where a certificate's issuer comes from: its own subject (self-signed), or a CA certificate. */
export interface Issuer {
  /** DER of the issuer's subject Name, copied verbatim into the issuer field. */
  readonly nameDer: Buffer;
  /** The issuer's subject key identifier, written as the authority key identifier. */
  readonly keyId: Buffer;
}

/** What to put in one certificate; every field is already decided by the caller. */
export interface CertificateTemplate {
  /** Positive, minimally encoded serial (first byte 0x01..0x7f); RFC 5280 §4.1.2.2: at most 20 bytes. */
  readonly serial: Uint8Array;
  readonly subject: readonly NameAttribute[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** `{ pathLen }` makes a CA (basicConstraints CA:TRUE); absent makes an end-entity certificate. */
  readonly ca?: { readonly pathLen: number };
  readonly keyUsage: readonly KeyUsage[];
  /** extendedKeyUsage id-kp-serverAuth. */
  readonly serverAuth?: boolean;
  readonly dnsNames?: readonly string[];
  /** Raw address bytes (4 or 16). */
  readonly ipAddresses?: readonly Uint8Array[];
}

export type KeyUsage = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';

// RFC 5280 §4.2.1.3 bit numbers (bit 0 is the most significant bit of the first octet).
const KEY_USAGE_BIT: Record<KeyUsage, number> = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 };

const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
const seq = (items: Asn1[]): Asn1 => asn1.create(U, T.SEQUENCE, true, items);
const oid = (id: string): Asn1 => asn1.create(U, T.OID, false, asn1.oidToDer(id).getBytes());
const octets = (b: Uint8Array): Asn1 => asn1.create(U, T.OCTETSTRING, false, bin(b));
const bin = (b: Uint8Array): string => Buffer.from(b).toString('binary');
const der = (node: Asn1): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');
const parse = (b: Buffer): Asn1 => asn1.fromDer(forge.util.createBuffer(b.toString('binary')), { strict: true, decodeBitStrings: false } as unknown as boolean);

/** The signature algorithm for a signing key: AlgorithmIdentifier and the digest name. */
function signatureAlgorithm(key: KeyObject): { algId: Asn1; digest: string } {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    // RFC 4055 §5: sha256WithRSAEncryption parameters are NULL.
    return { algId: seq([oid(OID.sha256WithRsa), asn1.create(U, T.NULL, false, '')]), digest: 'sha256' };
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    // RFC 5758 §3.2: ecdsa-with-SHA* parameters are absent; the digest follows the curve size.
    if (curve === 'prime256v1') return { algId: seq([oid(OID.ecdsaWithSha256)]), digest: 'sha256' };
    if (curve === 'secp384r1') return { algId: seq([oid(OID.ecdsaWithSha384)]), digest: 'sha384' };
    throw new SafespotError('ERR_CERT', `unsupported EC curve for a CA key: ${curve ?? 'unknown'} (use P-256 or P-384)`);
  }
  throw new SafespotError('ERR_CERT', `unsupported CA key type: ${type ?? 'unknown'} (use EC P-256/P-384 or RSA)`);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): Asn1 {
  const y = date.getUTCFullYear();
  return y >= 1950 && y < 2050
    ? asn1.create(U, T.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(U, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function name(attrs: readonly NameAttribute[]): Asn1 {
  return seq(
    attrs.map((a) =>
      asn1.create(U, T.SET, true, [
        seq([oid(a.type === 'CN' ? OID.commonName : OID.organizationName), asn1.create(U, T.UTF8, false, forge.util.encodeUtf8(a.value))]),
      ]),
    ),
  );
}

function extension(id: string, critical: boolean, value: Asn1): Asn1 {
  const parts = [oid(id)];
  if (critical) parts.push(asn1.create(U, T.BOOLEAN, false, '\xff'));
  parts.push(octets(der(value)));
  return seq(parts);
}

/** A BIT STRING of named bits, DER: trailing zero bits removed (X.690 §11.2.2). */
function namedBits(bits: readonly number[]): Asn1 {
  const top = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(top / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  const unused = 7 - (top & 7);
  return asn1.create(U, T.BITSTRING, false, String.fromCharCode(unused) + bin(bytes));
}

function extensions(t: CertificateTemplate, issuer: Issuer, subjectKeyId: Buffer): Asn1 {
  const list: Asn1[] = [];
  // RFC 5280 §4.2.1.9: CA:TRUE critical on CAs; pathLen 0 forbids issuing intermediate CAs.
  const bc: Asn1[] = t.ca
    ? [asn1.create(U, T.BOOLEAN, false, '\xff'), asn1.create(U, T.INTEGER, false, asn1.integerToDer(t.ca.pathLen).getBytes())]
    : [];
  list.push(extension(OID.basicConstraints, true, seq(bc)));
  list.push(extension(OID.keyUsage, true, namedBits(t.keyUsage.map((k) => KEY_USAGE_BIT[k]))));
  if (t.serverAuth) list.push(extension(OID.extKeyUsage, false, seq([oid(OID.serverAuth)])));
  const names: Asn1[] = [
    // GeneralName dNSName [2] IA5String and iPAddress [7] OCTET STRING, both implicit (RFC 5280 §4.2.1.6).
    ...(t.dnsNames ?? []).map((n) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, n)),
    ...(t.ipAddresses ?? []).map((ip) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, bin(ip))),
  ];
  // The subject of our leaves is never empty, so the SAN need not be critical (§4.2.1.6).
  if (names.length > 0) list.push(extension(OID.subjectAltName, false, seq(names)));
  list.push(extension(OID.subjectKeyIdentifier, false, octets(subjectKeyId)));
  list.push(
    extension(OID.authorityKeyIdentifier, false, seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, bin(issuer.keyId))])),
  );
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [seq(list)]);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = parse(publicKey.export({ type: 'spki', format: 'der' }));
  const bits = (spki.value as Asn1[])[1];
  if (!bits || typeof bits.value !== 'string') throw new SafespotError('ERR_CERT', 'public key is not a SubjectPublicKeyInfo');
  // The BIT STRING value starts with its unused-bits octet.
  return createHash('sha1').update(Buffer.from(bits.value.slice(1), 'binary')).digest();
}

/** The issuer fields a CA certificate (DER) gives its leaves: its raw subject Name and key id. */
export function readIssuer(caDer: Buffer, caPublicKey: KeyObject): Issuer {
  try {
    const cert = parse(caDer);
    const tbs = (cert.value as Asn1[])[0];
    const fields = tbs?.value as Asn1[] | undefined;
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, …
    const subject = fields?.[0]?.tagClass === asn1.Class.CONTEXT_SPECIFIC ? fields[5] : fields?.[4];
    if (!subject) throw new Error('no subject');
    let keyId: Buffer | undefined;
    const exts = fields?.find((f) => f.tagClass === asn1.Class.CONTEXT_SPECIFIC && f.type === 3);
    for (const ext of ((exts?.value as Asn1[] | undefined)?.[0]?.value as Asn1[] | undefined) ?? []) {
      const parts = ext.value as Asn1[];
      if (asn1.derToOid(forge.util.createBuffer(parts[0]?.value as string)) !== OID.subjectKeyIdentifier) continue;
      const inner = parse(Buffer.from(parts[parts.length - 1]?.value as string, 'binary'));
      keyId = Buffer.from(inner.value as string, 'binary');
    }
    return { nameDer: der(subject), keyId: keyId ?? keyIdentifier(caPublicKey) };
  } catch (cause) {
    if (cause instanceof SafespotError) throw cause;
    throw new SafespotError('ERR_CERT', 'the CA certificate could not be read as DER', { cause });
  }
}

/**
 * Encode and sign one certificate. `issuer` undefined = self-signed (the subject is the issuer and
 * the key id is the subject's own). Returns DER. The signature runs in the libuv thread pool.
 */
export async function buildCertificate(t: CertificateTemplate, signingKey: KeyObject, issuer?: Issuer): Promise<Buffer> {
  const { algId, digest } = signatureAlgorithm(signingKey);
  const subjectName = name(t.subject);
  const subjectKeyId = keyIdentifier(t.publicKey);
  const iss: Issuer = issuer ?? { nameDer: der(subjectName), keyId: subjectKeyId };
  const tbs = seq([
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(U, T.INTEGER, false, '\x02')]), // v3
    asn1.create(U, T.INTEGER, false, bin(t.serial)),
    algId,
    parse(iss.nameDer),
    seq([time(t.notBefore), time(t.notAfter)]),
    subjectName,
    parse(t.publicKey.export({ type: 'spki', format: 'der' })),
    extensions(t, iss, subjectKeyId),
  ]);
  const tbsDer = der(tbs);
  const signature = await new Promise<Buffer>((resolve, reject) => {
    // ECDSA signatures are DER Ecdsa-Sig-Value, which is what X.509 wants (RFC 5758 §3.2).
    sign(digest, tbsDer, { key: signingKey, dsaEncoding: 'der' }, (err, sig) => (err ? reject(err) : resolve(sig)));
  }).catch((cause: unknown) => {
    throw new SafespotError('ERR_CERT', `signing a certificate failed: ${(cause as Error).message}`, { cause });
  });
  const cert = seq([tbs, algId, asn1.create(U, T.BITSTRING, false, '\x00' + signature.toString('binary'))]);
  return der(cert);
}
