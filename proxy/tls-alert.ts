/**
 * A fatal TLS alert record, the refusal a TLS client understands before any handshake: record type
 * alert(21), a record version, length 2, level fatal(2), description (RFC 8446 §6, RFC 5246 §7.2).
 * Before version negotiation the record version follows the client's ClientHello.legacy_version
 * (0x0301..0x0303); TLS 1.3 fixes it at 0x0303 (RFC 8446 §5.1).
 */
import { TlsAlert, type TlsAlertName } from '../policy/errors.js';

export function tlsAlertRecord(alert: TlsAlertName, clientLegacyVersion = 0x0303): Buffer {
  const version = Math.min(0x0303, Math.max(0x0301, clientLegacyVersion));
  return Buffer.from([21, version >> 8, version & 0xff, 0, 2, 2, TlsAlert[alert]]);
}
