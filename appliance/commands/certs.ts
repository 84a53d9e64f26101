/**
 * `safespot certs init|export|show`: create the interception CA, print its certificate for
 * installation on managed devices, and describe it. The CA folder is `--dir`, else `ca.dir` of
 * `--config`, else that of the embedded default (./safespot-state/ca), so `serve` and `certs`
 * agree. The private key is never printed or exported.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafespotError } from '../../policy/errors.js';
import { CA_CERT_FILE, caInstallInfo, initCa, loadCa, type Ca, type KeyKind } from '../../certs/index.js';
import { loadConfigFile } from '../config.js';
import { defaultConfig } from '../default-config.js';
import { asksForHelp, HelpRequested, parseCommandArgs, writeOut, type Command, type Io } from '../io.js';

const USAGE = `safespot certs init   [--dir DIR | --config FILE] [--force] [--key-type ecdsa-p256|rsa-2048]
       safespot certs export [--dir DIR | --config FILE] [--der] [--out FILE]
       safespot certs show   [--dir DIR | --config FILE] [--json]`;

const common = {
  dir: { type: 'string', short: 'd' },
  config: { type: 'string', short: 'c' },
} as const;

function caDir(values: { dir?: string | undefined; config?: string | undefined }): string {
  if (values.dir !== undefined) {
    if (values.dir === '') throw new SafespotError('ERR_USAGE', `--dir needs a folder\nusage: ${USAGE}`);
    return values.dir;
  }
  return (values.config !== undefined ? loadConfigFile(values.config) : defaultConfig()).ca.dir;
}

function describe(ca: Ca): Record<string, string> {
  const info = caInstallInfo(ca);
  const key = ca.cert.publicKey;
  const details = key.asymmetricKeyDetails;
  return {
    subject: info.subject,
    sha256: info.sha256Fingerprint,
    notBefore: new Date(ca.cert.validFrom).toISOString(),
    notAfter: info.notAfter.toISOString(),
    serial: ca.cert.serialNumber,
    key: key.asymmetricKeyType === 'ec' ? `ec ${details?.namedCurve ?? ''}` : `${key.asymmetricKeyType ?? '?'} ${details?.modulusLength ?? ''}`,
    certificate: ca.dir === undefined ? '(in memory)' : join(ca.dir, CA_CERT_FILE),
  };
}

const table = (d: Record<string, string>): string =>
  Object.entries(d)
    .map(([k, v]) => `${k.padEnd(12)} ${v}`)
    .join('\n') + '\n';

async function init(args: string[], io: Io): Promise<number> {
  const { values } = parseCommandArgs(
    args,
    { ...common, force: { type: 'boolean' }, 'key-type': { type: 'string' } },
    USAGE,
  );
  const keyType = values['key-type'] ?? 'ecdsa-p256';
  if (keyType !== 'ecdsa-p256' && keyType !== 'rsa-2048') {
    throw new SafespotError('ERR_USAGE', `--key-type must be ecdsa-p256 or rsa-2048, got "${keyType}"\nusage: ${USAGE}`);
  }
  const dir = caDir(values);
  const ca = await initCa(dir, { force: values.force === true, keyKind: keyType as KeyKind });
  await writeOut(io.stdout, `created a CA in ${dir} (key ca.key mode 0600 stays here; never copy it to devices)\n${table(describe(ca))}`);
  await writeOut(io.stdout, `install ${join(dir, CA_CERT_FILE)} on managed devices only (safespot certs export --dir ${dir})\n`);
  return 0;
}

async function exportCert(args: string[], io: Io): Promise<number> {
  const { values } = parseCommandArgs(args, { ...common, der: { type: 'boolean' }, out: { type: 'string', short: 'o' } }, USAGE);
  const asDer = values.der === true;
  if (asDer && values.out === undefined && (io.stdout as { isTTY?: boolean }).isTTY) {
    throw new SafespotError('ERR_USAGE', `--der writes binary: give --out FILE or redirect standard output\nusage: ${USAGE}`);
  }
  const ca = await loadCa(caDir(values));
  for (const w of ca.warnings) io.stderr.write(`safespot: warning: ${w}\n`);
  const info = caInstallInfo(ca);
  const body = asDer ? Buffer.from(info.der) : info.pem;
  if (values.out !== undefined) {
    try {
      await writeFile(values.out, body, { mode: 0o644 });
    } catch (cause) {
      throw new SafespotError('ERR_CERT', `cannot write ${values.out}: ${(cause as Error).message}`, { cause });
    }
    io.stderr.write(`wrote ${values.out} (${asDer ? 'DER' : 'PEM'}, SHA-256 ${info.sha256Fingerprint})\n`);
  } else if (!io.stdout.write(body)) {
    await new Promise<void>((resolve) => io.stdout.once('drain', resolve));
  }
  return 0;
}

async function show(args: string[], io: Io): Promise<number> {
  const { values } = parseCommandArgs(args, { ...common, json: { type: 'boolean' } }, USAGE);
  const ca = await loadCa(caDir(values));
  const d = describe(ca);
  if (values.json) {
    await writeOut(io.stdout, `${JSON.stringify({ ...d, warnings: ca.warnings })}\n`);
  } else {
    await writeOut(io.stdout, table(d));
    for (const w of ca.warnings) await writeOut(io.stdout, `warning      ${w}\n`);
  }
  return 0;
}

export const run: Command = async (args, io) => {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'init':
      return init(rest, io);
    case 'export':
      return exportCert(rest, io);
    case 'show':
      return show(rest, io);
    default:
      // `certs --help`, `certs -h`, also after other words; a subcommand's own args answer it in parseCommandArgs.
      if (asksForHelp(args)) throw new HelpRequested(USAGE);
      throw new SafespotError('ERR_USAGE', `${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`}\nusage: ${USAGE}`);
  }
};
