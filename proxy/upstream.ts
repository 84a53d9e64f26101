/**
 * Opening a connection to an upstream server: resolve (proxy/resolver.ts), check the RESOLVED
 * address (never the name: a public name may point at 127.0.0.1), connect with a timeout.
 *
 * Refused always: a port not in upstream.ports (the port asked for, on every path), and the
 * appliance's own listeners (a request to ourselves would loop). Refused unless
 * `allowPrivate` or the name is in upstream.hosts: loopback, link-local, private, multicast, reserved
 * and the appliance's own interface addresses.
 */
import { connect as netConnect, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { SafespotError } from '../policy/errors.js';
import { CidrSet, parseIp } from '../policy/ip.js';
import type { Observer } from './hooks.js';
import { privateAddressReason, sameAddress, type Resolved, type Resolver } from './resolver.js';
import { handleErrors } from './refuse.js';
import { TunnelReader } from './tunnel.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** The address a listening server is really bound to (for addOwnEndpoint): what `localhost` became. */
export function boundEndpoint(server: Server): Endpoint {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('the listener has no address');
  return { host: a.address, port: a.port };
}

export interface UpstreamOptions {
  readonly allowPrivate: boolean;
  readonly connectTimeoutMs: number;
  /**
   * upstream.ports: the only destination ports a guest may ask for, on every path (CONNECT, plain
   * HTTP, upgrades, transparent listeners). The port asked for is checked, not the one an
   * upstream.hosts entry (`addr:port`) maps it to. Absent: any port (unit tests).
   */
  readonly ports?: readonly number[];
}

const LOOPBACK = CidrSet.parse(['127.0.0.0/8', '::1/128']);
const UNSPECIFIED = CidrSet.parse(['0.0.0.0/32', '::/128']);
/** Remembered answers of the private-range check (distinct destination addresses). */
const PRIVATE_REFUSALS_MAX = 4096;

type UpstreamReason = Parameters<Observer['upstreamError']>[0];

/** The observer reason for an upstream failure. */
export function upstreamReason(err: unknown): UpstreamReason {
  if (err instanceof SafespotError) {
    switch (err.code) {
      case 'ERR_RESOLVE':
        return 'resolve';
      case 'ERR_DESTINATION_FORBIDDEN':
        return 'refused_destination';
      case 'ERR_UPSTREAM_TIMEOUT':
        return 'timeout';
      case 'ERR_UPSTREAM':
        return 'connect';
      case 'ERR_UPSTREAM_CERT':
        return 'tls';
      default:
        return 'other';
    }
  }
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'connect';
  return 'other';
}

export class Upstream {
  /** Listening endpoints of this appliance (loop protection), filled by the server after listen. */
  private readonly own: Endpoint[] = [];
  private readonly privateRefusals = new Map<string, string | null>();
  private readonly localAddresses: string[];

  constructor(
    readonly resolver: Resolver,
    private readonly opts: UpstreamOptions,
    extraOwnAddresses: readonly string[] = [],
  ) {
    const ifaces = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    this.localAddresses = [...ifaces, ...extraOwnAddresses];
  }

  /**
   * Register one of our own listening endpoints: its bound address (server.address()), `0.0.0.0` /
   * `::` = every local address. A name (`localhost`) is not an address a destination could be
   * compared with; it is treated as every local address too, rather than matching nothing.
   */
  addOwnEndpoint(e: Endpoint): void {
    this.own.push(e);
  }

  private isOwnEndpoint(address: string, port: number): boolean {
    // Connecting to the unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0) reaches this host (Linux
    // treats it as loopback), whatever address our listener is bound to. Addresses are parsed only
    // when one of our endpoints has this port (almost never: guests go to 443 and 80).
    for (const e of this.own) {
      if (e.port !== port) continue;
      if (UNSPECIFIED.contains(address)) return true;
      if (e.host === '0.0.0.0' || e.host === '::' || parseIp(e.host) === null) {
        if (LOOPBACK.contains(address)) return true;
        if (this.localAddresses.some((l) => sameAddress(l, address))) return true;
      } else if (sameAddress(e.host, address)) return true;
    }
    return false;
  }

  /**
   * Why a resolved address is not a public destination (a private range, or an address of this
   * host), as the refusal's message, or null. A pure function of the address for the life of this
   * Upstream, so the answers are remembered (bounded: the map is dropped and refilled when full).
   */
  private privateRefusal(address: string): string | null {
    let message = this.privateRefusals.get(address);
    if (message === undefined) {
      const why = privateAddressReason(address);
      if (why !== null) message = `the destination is a ${why}`;
      else if (this.localAddresses.some((l) => sameAddress(l, address))) message = 'the destination is an address of this appliance';
      else message = null;
      if (this.privateRefusals.size >= PRIVATE_REFUSALS_MAX) this.privateRefusals.clear();
      this.privateRefusals.set(address, message);
    }
    return message;
  }

  /** Resolve and check a destination. Throws ERR_RESOLVE or ERR_DESTINATION_FORBIDDEN. */
  async destination(host: string, port: number): Promise<Resolved> {
    this.checkPort(port);
    return this.check(await this.resolver.resolve(host, port));
  }

  /** The port asked for must be in upstream.ports (as CONNECT checks it: the same 403 and count). */
  private checkPort(port: number): void {
    const ports = this.opts.ports;
    if (ports !== undefined && !ports.includes(port)) throw new SafespotError('ERR_DESTINATION_FORBIDDEN', `port ${port} is not allowed`);
  }

  /**
   * destination() without waiting, when the name needs no DNS query (an IP literal, upstream.hosts,
   * a fresh cached answer): the checked destination, or null (then call destination()). Throws
   * ERR_DESTINATION_FORBIDDEN as destination() rejects.
   */
  destinationNow(host: string, port: number): Resolved | null {
    this.checkPort(port);
    const r = this.resolver.resolveNow(host, port);
    return r === null ? null : this.check(r);
  }

  /** The destination check on a resolved address: returns it, or throws ERR_DESTINATION_FORBIDDEN. */
  private check(r: Resolved): Resolved {
    if (this.isOwnEndpoint(r.address, r.port)) {
      throw new SafespotError('ERR_DESTINATION_FORBIDDEN', 'the destination is this appliance');
    }
    if (!r.trusted && !this.opts.allowPrivate) {
      const refusal = this.privateRefusal(r.address);
      if (refusal !== null) throw new SafespotError('ERR_DESTINATION_FORBIDDEN', refusal);
    }
    return r;
  }

  /**
   * A connected TCP socket to a checked destination. The socket has an error listener from birth.
   * `forTunnel`: it reads through a TunnelReader, for splice() only (no 'data' events).
   */
  async connect(host: string, port: number, forTunnel = false): Promise<Socket> {
    const r = await this.destination(host, port);
    return connectTcpAsync(r.address, r.port, this.opts.connectTimeoutMs, forTunnel);
  }

  /**
   * Connect to what destination() returned a moment ago (a CONNECT checks before its 200 and
   * connects after the ClientHello: the same host is not resolved and checked twice). The socket
   * is for a tunnel (splice): it reads through a TunnelReader and emits no 'data'.
   */
  connectChecked(r: Resolved, done: ConnectDone): void {
    connectTcp(r.address, r.port, this.opts.connectTimeoutMs, done, true);
  }
}

/** A connected socket, or the SafespotError that says why there is none. */
export type ConnectDone = (err: SafespotError | null, socket?: Socket) => void;

/**
 * net.connect with a connect timeout; `done` once connected (or failed: errors become
 * SafespotErrors). A callback rather than a promise: this runs once per tunnel. `forTunnel`: the
 * socket reads through a TunnelReader (proxy/tunnel.ts), for splice() only: it emits no 'data'.
 */
export function connectTcp(address: string, port: number, timeoutMs: number, done: ConnectDone, forTunnel = false): void {
  const reader = forTunnel ? new TunnelReader() : null;
  const socket = reader === null ? netConnect({ host: address, port, noDelay: true }) : netConnect({ host: address, port, noDelay: true, onread: reader.onread });
  reader?.attach(socket);
  const timer = setTimeout(() => {
    socket.off('error', onError);
    handleErrors(socket);
    socket.destroy();
    done(new SafespotError('ERR_UPSTREAM_TIMEOUT', 'connecting to the upstream server timed out'));
  }, timeoutMs);
  const onError = (err: NodeJS.ErrnoException): void => {
    clearTimeout(timer);
    handleErrors(socket);
    socket.destroy();
    done(new SafespotError('ERR_UPSTREAM', `cannot connect to the upstream server (${err.code ?? 'error'})`, { cause: err }));
  };
  socket.once('error', onError);
  socket.once('connect', () => {
    clearTimeout(timer);
    socket.off('error', onError);
    handleErrors(socket); // until the tunnel or request that takes the socket handles it
    done(null, socket);
  });
}

/** connectTcp as a promise, for the request paths that await it. */
export function connectTcpAsync(address: string, port: number, timeoutMs: number, forTunnel = false): Promise<Socket> {
  return new Promise((resolve, reject) => connectTcp(address, port, timeoutMs, (err, socket) => (err ? reject(err) : resolve(socket!)), forTunnel));
}

/**
 * A connection to a CONNECT's checked destination, opened while the client sends its ClientHello.
 * Nothing is written on it before the SNI has been decided: the TLS step takes it for the splice
 * (take), or closes it unused (drop) when the hello is refused, intercepted, not TLS, routed
 * elsewhere, or never comes. Opening it early overlaps the connect with the client's round trip:
 * the tunnel's added time to first byte went to that of a bare forwarder (BENCHMARKS.md, "Proxy
 * (network edge)"). What the server may send first stays in the socket's buffer until the splice.
 */
export class EarlyConnect {
  private state: 'open' | 'taken' | 'dropped' = 'open';
  private result: { err: SafespotError | null; socket?: Socket } | null = null;
  private waiting: ConnectDone | null = null;

  constructor(
    private readonly upstream: Upstream,
    private readonly resolved: Resolved,
  ) {
    upstream.connectChecked(resolved, (err, socket) => {
      this.result = socket === undefined ? { err } : { err, socket };
      if (this.state === 'dropped') return void socket?.destroy();
      const w = this.waiting;
      this.waiting = null;
      w?.(err, socket);
    });
  }

  /** The connection for the splice (at once, or once it is up). One taker; a closed one is opened again. */
  take(done: ConnectDone): void {
    if (this.state !== 'open') throw new Error('EarlyConnect: taken or dropped already');
    this.state = 'taken';
    const r = this.result;
    if (r === null) this.waiting = done;
    else if (r.socket?.destroyed) this.upstream.connectChecked(this.resolved, done); // the server hung up meanwhile
    else done(r.err, r.socket);
  }

  /** Not needed after all: closed now, or as soon as it connects. Does nothing once taken. */
  drop(): void {
    if (this.state !== 'open') return;
    this.state = 'dropped';
    this.result?.socket?.destroy();
  }
}
