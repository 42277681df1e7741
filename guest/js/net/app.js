// A capsock:net guest in JavaScript (ComponentizeJS), world `capsock:net/imports`
// + wasi:cli/run: the contract is not Python-only.
//
//   net echo MAX            echo on the pre-opened TCP listener (--tcplisten), MAX connections
//   net client HOST:PORT TEXT   connect, send TEXT, half-close, print what comes back
//   net cases PLAN-JSON     the capsock:net conformance cases of the kinds below, one
//                           {"case", "got"} JSON line each (capsock.conformance.harness)
//
// Every loop is bounded; errors of the contract arrive as thrown ComponentError
// whose payload is the error-code name.
import { getArguments } from 'wasi:cli/environment@0.2.9';
import { preopenedSockets } from 'capsock:net/socket@0.2.0';
import { network as tcpNetwork, TcpSocket } from 'capsock:net/socket-tcp@0.2.0';
import { network as udpNetwork } from 'capsock:net/socket-udp@0.2.0';
import { resolver as getResolver } from 'capsock:net/ip-resolve-address@0.2.0';

const MAX_CHUNKS = 100000;

class Value extends Error {
  constructor(value) {
    super(String(value));
    this.value = String(value);
  }
}

// -- addresses -------------------------------------------------------------

function parseV6(text) {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const left = head ? head.split(':').map((w) => parseInt(w, 16)) : [];
  const right = tail ? tail.split(':').map((w) => parseInt(w, 16)) : [];
  if (tail === null) return left;
  return [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

function v6Text(words) {
  let best = [0, 0];
  let run = 0;
  let start = 0;
  [...words, 1].forEach((word, index) => {
    if (word === 0) {
      if (run === 0) start = index;
      run += 1;
    } else {
      if (run > best[1] && run > 1) best = [start, run];
      run = 0;
    }
  });
  const hex = words.map((w) => w.toString(16));
  if (!best[1]) return hex.join(':');
  return `${hex.slice(0, best[0]).join(':')}::${hex.slice(best[0] + best[1]).join(':')}`;
}

function addr(text) {
  const cut = text.lastIndexOf(':');
  const host = text.slice(0, cut);
  const port = Number(text.slice(cut + 1));
  if (host.startsWith('[')) {
    return { tag: 'ipv6', val: { port, flowInfo: 0, address: parseV6(host.slice(1, -1)), scopeId: 0 } };
  }
  return { tag: 'ipv4', val: { port, address: host.split('.').map(Number) } };
}

function fmt(address) {
  if (address.tag === 'ipv4') return `${address.val.address.join('.')}:${address.val.port}`;
  return `[${v6Text(address.val.address)}]:${address.val.port}`;
}

function ipText(ip) {
  return ip.tag === 'ipv4' ? ip.val.join('.') : v6Text(ip.val);
}

// -- sockets -----------------------------------------------------------------

function tcp(family = 'ipv4') {
  const net = tcpNetwork();
  if (net === undefined) throw new Value('no-network');
  return net.createTcpSocket(family);
}

function udp(family = 'ipv4') {
  const net = udpNetwork();
  if (net === undefined) throw new Value('no-network');
  return net.createUdpSocket(family);
}

function sendAll(sock, bytes) {
  let view = bytes;
  for (let i = 0; i < MAX_CHUNKS && view.length; i += 1) {
    view = view.subarray(Number(sock.send(view)));
  }
}

function receiveExactly(sock, size) {
  const parts = [];
  let got = 0;
  for (let i = 0; i < MAX_CHUNKS && got < size; i += 1) {
    const chunk = sock.receive(BigInt(size - got));
    if (chunk.length === 0) break;
    parts.push(chunk);
    got += chunk.length;
  }
  const out = new Uint8Array(got);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function preopen(protocol) {
  for (const [sock, name] of PREOPENS) {
    if (sock.protocol() === protocol) return [sock, name];
  }
  throw new Value('no-preopen');
}

// -- the conformance kinds (same names and reports as the Python probe) -----

const KINDS = {
  'tcp-network': () => { throw new Value(tcpNetwork() === undefined ? 'none' : 'some'); },
  'udp-network': () => { throw new Value(udpNetwork() === undefined ? 'none' : 'some'); },
  resolver: () => { throw new Value(getResolver() === undefined ? 'none' : 'some'); },
  'tcp-create': (family) => { throw new Value(tcp(family).addressFamily()); },
  'udp-create': (family) => { throw new Value(udp(family).addressFamily()); },
  'tcp-connect': (target, family = 'ipv4') => { tcp(family).connect(addr(target)); },
  'tcp-connect-twice': (target) => {
    const sock = tcp();
    sock.connect(addr(target));
    sock.connect(addr(target));
  },
  'tcp-bind': (local, family = 'ipv4') => { tcp(family).bind(addr(local)); },
  'tcp-bind-twice': (local) => {
    const sock = tcp();
    sock.bind(addr(local));
    sock.bind(addr(local));
  },
  'tcp-listen': (local) => {
    const sock = tcp();
    if (local) sock.bind(addr(local));
    sock.listen(8);
    throw new Value(sock.isListening() ? 'True' : 'False');
  },
  'tcp-echo': (target, size, family = 'ipv4') => {
    const sock = tcp(family);
    sock.connect(addr(target));
    const payload = new Uint8Array(size).map((_, i) => i % 251);
    const received = [];
    for (let offset = 0; offset < size; offset += 16384) {
      const chunk = payload.subarray(offset, offset + 16384);
      sendAll(sock, chunk);
      received.push(...receiveExactly(sock, chunk.length));
    }
    const exact = received.length === size && received.every((b, i) => b === payload[i]);
    throw new Value(`${received.length} exact:${exact ? 'True' : 'False'}`);
  },
  'udp-bind': (local, family = 'ipv4') => { udp(family).bind(addr(local)); },
  'udp-send': (target, size = 8) => { udp().send(new Uint8Array(size).fill(120), addr(target)); },
  'udp-echo': (target, family = 'ipv4') => {
    const sock = udp(family);
    sock.setTimeout(5000000000n);
    sock.send(new TextEncoder().encode('datagram'), addr(target));
    const datagram = sock.receive(100n);
    const text = new TextDecoder().decode(datagram.data);
    throw new Value(`${text} from-target:${fmt(datagram.remoteAddress) === target ? 'True' : 'False'}`);
  },
  'preopen-protocol': (protocol) => { throw new Value(preopen(protocol)[0].protocol()); },
  'preopen-family': (protocol) => { throw new Value(preopen(protocol)[0].addressFamily()); },
  'preopen-name': (protocol) => { throw new Value(preopen(protocol)[1]); },
  'preopen-taken-once': () => { throw new Value(preopenedSockets().length); },
  resolve: (name, family) => {
    const resolver = getResolver();
    if (resolver === undefined) throw new Value('no-resolver');
    const found = resolver.resolveAddresses(name, { addressFamily: family ?? undefined });
    throw new Value(found.map(ipText).sort().join(','));
  },
};

const PREOPENS = [];

function runCase(kind, args) {
  const probe = KINDS[kind];
  if (probe === undefined) return `unknown-kind:${kind}`;
  try {
    probe(...args);
    return 'ok';
  } catch (error) {
    if (error instanceof Value) return `value:${error.value}`;
    if (error && typeof error.payload === 'string') return error.payload;
    return `js-error:${error}`;
  }
}

// -- echo server and client ---------------------------------------------------

function echo(max) {
  const [socket, name] = preopen('tcp');
  const listener = TcpSocket.fromSocket(socket);
  console.log(`listening on ${name}`);
  for (let served = 0; served < max; served += 1) {
    const [conn] = listener.accept();
    for (let i = 0; i < MAX_CHUNKS; i += 1) {
      const data = conn.receive(65536n);
      if (data.length === 0) break;
      sendAll(conn, data);
    }
    conn.shutdown('both');
  }
}

function client(target, text) {
  const sock = tcp(target.startsWith('[') ? 'ipv6' : 'ipv4');
  sock.connect(addr(target));
  sendAll(sock, new TextEncoder().encode(text));
  sock.shutdown('send');
  const parts = [];
  for (let i = 0; i < MAX_CHUNKS; i += 1) {
    const data = sock.receive(65536n);
    if (data.length === 0) break;
    parts.push(new TextDecoder().decode(data));
  }
  console.log(parts.join(''));
}

export const run = {
  run() {
    const args = getArguments().slice(1);
    // One JSON argument alone is a case plan (how capsock's conformance harness calls).
    const [mode, ...rest] = args.length === 1 && args[0].startsWith('[') ? ['cases', ...args] : args;
    try {
      if (mode === 'echo') {
        PREOPENS.push(...preopenedSockets());
        echo(Number(rest[0] ?? 1));
      } else if (mode === 'client') {
        client(rest[0], rest[1] ?? 'hello');
      } else if (mode === 'cases') {
        PREOPENS.push(...preopenedSockets());
        for (const [caseId, kind, caseArgs] of JSON.parse(rest[0])) {
          console.log(JSON.stringify({ case: caseId, got: runCase(kind, caseArgs) }));
        }
      } else {
        console.error('usage: net echo MAX | net client HOST:PORT TEXT | net cases PLAN-JSON');
        throw new Error('usage');
      }
    } catch (error) {
      const text = error instanceof Value ? error.value : error?.payload ?? error?.message;
      console.error(`error: ${text}`);
      throw error;
    }
  },
};
