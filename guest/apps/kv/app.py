"""Key-value server speaking the Redis protocol (RESP2), persisted to an
append-only file.

    kv [HOST:PORT] [--data DIR] [--file NAME] [--no-persist]

Serves the first pre-opened TCP listener (or listens on HOST:PORT through
the TCP capability), many clients at once on `capsock_guest.Loop`; real
``redis-cli`` and ``redis-benchmark`` talk to it:

    capsock run --tcplisten 127.0.0.1:6379 --dir ./data::/data build/kv.wasm
    redis-cli -p 6379 set greeting hello

Commands: PING, ECHO, GET, SET (EX/PX/EXAT/PXAT, NX/XX, KEEPTTL, GET), DEL,
EXISTS, INCR/DECR/INCRBY/DECRBY, EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT,
TTL/PTTL, PERSIST, KEYS (Redis glob), DBSIZE, FLUSHDB/FLUSHALL, SELECT 0,
QUIT, and the stubs clients send on their own: COMMAND (empty: redis-cli
asks for docs), CONFIG GET (redis-benchmark asks for ``save`` and
``appendonly``), INFO. Requests are RESP arrays or inline lines
(``PING`` typed into telnet), pipelined: every complete request in a read
is answered in one send.

Persistence: every write is appended to ``DIR/NAME`` (default
``/data/kv.aof``, the guest path of a ``--dir`` pre-open) as RESP, the
format of Redis' own AOF, and flushed to the OS before the reply goes out,
so an acknowledged write survives the process. Expirations are written as
absolute times (``PEXPIREAT``, ``SET ... PXAT``), so a key does not live
longer because the server restarted. On start the file is replayed; a
torn last record (a crash mid-write) is cut off, as Redis does with
``aof-load-truncated yes``. ``BGREWRITEAOF`` rewrites it compactly.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import BinaryIO

import capsock_guest as cg

MAX_BULK = 64 << 20
MAX_INLINE = 64 << 10
MAX_ARGS = 1 << 20

Reply = bytes


def simple(text: str) -> Reply:
    return b"+" + text.encode() + b"\r\n"


def error(text: str) -> Reply:
    return b"-" + text.encode() + b"\r\n"


def integer(n: int) -> Reply:
    return b":%d\r\n" % n


def bulk(data: bytes | None) -> Reply:
    if data is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array(items: list[bytes]) -> Reply:
    return b"*%d\r\n" % len(items) + b"".join(bulk(i) for i in items)


OK = simple("OK")
NIL = bulk(None)
NOT_INTEGER = error("ERR value is not an integer or out of range")
SYNTAX = error("ERR syntax error")


class ProtocolError(Exception):
    """The byte stream is not RESP: reply ``-ERR Protocol error`` and close."""


def parse_command(buf: bytearray, start: int) -> tuple[list[bytes] | None, int]:
    """One request from ``buf[start:]``: ``(args, next start)``, or
    ``(None, start)`` when it is not complete yet. Arrays of bulk strings
    (what clients send) and inline commands (what people type)."""
    if start >= len(buf):
        return None, start
    if buf[start] != ord("*"):
        end = buf.find(b"\n", start)
        if end < 0:
            if len(buf) - start > MAX_INLINE:
                raise ProtocolError("too big inline request")
            return None, start
        line = bytes(buf[start:end]).rstrip(b"\r")
        return split_inline(line), end + 1
    end = buf.find(b"\r\n", start)
    if end < 0:
        return None, start
    try:
        count = int(buf[start + 1:end])
    except ValueError:
        raise ProtocolError("invalid multibulk length") from None
    if count > MAX_ARGS:
        raise ProtocolError("invalid multibulk length")
    pos = end + 2
    args: list[bytes] = []
    for _ in range(max(count, 0)):
        if pos >= len(buf):
            return None, start
        if buf[pos] != ord("$"):
            raise ProtocolError(f"expected '$', got '{chr(buf[pos])}'")
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None, start
        try:
            size = int(buf[pos + 1:end])
        except ValueError:
            raise ProtocolError("invalid bulk length") from None
        if size < 0 or size > MAX_BULK:
            raise ProtocolError("invalid bulk length")
        data_start = end + 2
        if len(buf) < data_start + size + 2:
            return None, start
        args.append(bytes(buf[data_start:data_start + size]))
        pos = data_start + size + 2
    return args, pos


def split_inline(line: bytes) -> list[bytes]:
    """Inline arguments: whitespace-separated, with "double" (C escapes)
    and 'single' quotes like redis-cli's own splitting."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i:i + 1].isspace():
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = line[i:i + 1] if line[i:i + 1] in (b'"', b"'") else b""
        if quote:
            i += 1
            while True:
                if i >= n:
                    raise ProtocolError("unbalanced quotes in request")
                ch = line[i:i + 1]
                if quote == b'"' and ch == b"\\" and i + 1 < n:
                    nxt = line[i + 1:i + 2]
                    current += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b",
                                b"a": b"\a"}.get(nxt, nxt)
                    i += 2
                elif ch == quote:
                    i += 1
                    if i < n and not line[i:i + 1].isspace():
                        raise ProtocolError("unbalanced quotes in request")
                    break
                else:
                    current += ch
                    i += 1
        else:
            while i < n and not line[i:i + 1].isspace():
                current += line[i:i + 1]
                i += 1
        args.append(bytes(current))


def redis_glob(pattern: bytes) -> str:
    """A Redis glob for `fnmatchcase`: ``[^a]`` means ``[!a]`` and ``\\x``
    means a literal x (fnmatch has no escape; ``[x]`` is one)."""
    text = pattern.decode("latin-1")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            out.append(f"[{escaped}]" if escaped in "*?[" else escaped)
            i += 2
        elif ch == "[" and text[i + 1:i + 2] == "^":
            out.append("[!")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_int(data: bytes) -> int | None:
    """A Redis integer: optional minus, digits, no spaces or plus, 64-bit."""
    if not re.fullmatch(rb"-?\d+", data) or len(data) > 20:
        return None
    value = int(data)
    return value if -(1 << 63) <= value < (1 << 63) else None


class Store:
    """The keyspace: values, absolute expiry times (ms), and the AOF."""

    def __init__(self, aof_path: str | None) -> None:
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, int] = {}
        self.aof_path = aof_path
        self.aof: BinaryIO | None = None
        self.pending: list[bytes] = []
        self.dirty_since_rewrite = 0

    # -- expiry -------------------------------------------------------------
    def alive(self, key: bytes) -> bool:
        """Whether `key` exists, evicting it first when it has expired."""
        deadline = self.expires.get(key)
        if deadline is not None and deadline <= now_ms():
            del self.data[key]
            del self.expires[key]
            return False
        return key in self.data

    def purge(self) -> None:
        now = now_ms()
        for key in [k for k, t in self.expires.items() if t <= now]:
            del self.data[key]
            del self.expires[key]

    def sweep(self, budget: int = 200) -> None:
        """Evict up to `budget` expired keys (the periodic active expiry)."""
        now = now_ms()
        gone = []
        for key, deadline in self.expires.items():
            if deadline <= now:
                gone.append(key)
                if len(gone) >= budget:
                    break
        for key in gone:
            del self.data[key]
            del self.expires[key]

    # -- persistence ----------------------------------------------------------
    def log(self, *args: bytes) -> None:
        """Queue one write for the AOF (written by `flush`, before replies)."""
        if self.aof_path is not None:
            self.pending.append(array(list(args)))

    def flush(self) -> None:
        if self.pending and self.aof is not None:
            self.aof.write(b"".join(self.pending))
            self.aof.flush()
            self.dirty_since_rewrite += len(self.pending)
        self.pending.clear()

    def load(self) -> tuple[int, int]:
        """Replay the AOF; ``(commands applied, bytes cut off a torn tail)``."""
        if self.aof_path is None:
            return 0, 0
        try:
            with open(self.aof_path, "rb") as handle:
                raw = bytearray(handle.read())
        except FileNotFoundError:
            raw = bytearray()
        pos = applied = 0
        while pos < len(raw):
            try:
                args, nxt = parse_command(raw, pos)
            except ProtocolError:
                args, nxt = None, pos
            if args is None:
                break
            pos = nxt
            if args:
                execute(self, args, replaying=True)
                applied += 1
        cut = len(raw) - pos
        self.pending.clear()
        mode = "r+b" if raw else "wb"
        handle = open(self.aof_path, mode)
        if cut:
            handle.truncate(pos)
        handle.seek(pos)
        self.aof = handle
        return applied, cut

    def rewrite(self) -> None:
        """Rewrite the AOF as the smallest log of the current keyspace:
        written to a temporary file, then renamed over the old one."""
        if self.aof_path is None:
            return
        self.purge()
        temporary = self.aof_path + ".rewrite"
        with open(temporary, "wb") as out:
            for key, value in self.data.items():
                deadline = self.expires.get(key)
                if deadline is None:
                    out.write(array([b"SET", key, value]))
                else:
                    out.write(array([b"SET", key, value, b"PXAT", b"%d" % deadline]))
        if self.aof is not None:
            self.aof.close()
        os.replace(temporary, self.aof_path)
        self.aof = open(self.aof_path, "ab")
        self.dirty_since_rewrite = 0


# -- commands -------------------------------------------------------------------
Handler = Callable[[Store, list[bytes]], Reply]
#: name -> (handler, arity): arity N means exactly N args (with the name),
#: -N at least N, as in Redis' command table.
COMMANDS: dict[bytes, tuple[Handler, int]] = {}


def command(name: str, arity: int) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name.encode()] = (fn, arity)
        return fn
    return register


@command("ping", -1)
def cmd_ping(store: Store, args: list[bytes]) -> Reply:
    if len(args) > 2:
        return error("ERR wrong number of arguments for 'ping' command")
    return bulk(args[1]) if len(args) == 2 else simple("PONG")


@command("echo", 2)
def cmd_echo(store: Store, args: list[bytes]) -> Reply:
    return bulk(args[1])


@command("get", 2)
def cmd_get(store: Store, args: list[bytes]) -> Reply:
    return bulk(store.data[args[1]]) if store.alive(args[1]) else NIL


@command("set", -3)
def cmd_set(store: Store, args: list[bytes]) -> Reply:
    key, value = args[1], args[2]
    deadline: int | None = None
    condition = keep_ttl = want_old = False
    cond_kind = b""
    i = 3
    while i < len(args):
        option = args[i].upper()
        if option in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < len(args):
            if deadline is not None or keep_ttl:
                return SYNTAX
            amount = parse_int(args[i + 1])
            if amount is None:
                return NOT_INTEGER
            if amount <= 0:
                return error("ERR invalid expire time in 'set' command")
            deadline = {b"EX": now_ms() + amount * 1000, b"PX": now_ms() + amount,
                        b"EXAT": amount * 1000, b"PXAT": amount}[option]
            i += 2
        elif option in (b"NX", b"XX"):
            if condition and cond_kind != option:
                return SYNTAX
            condition, cond_kind = True, option
            i += 1
        elif option == b"KEEPTTL":
            if deadline is not None:
                return SYNTAX
            keep_ttl = True
            i += 1
        elif option == b"GET":
            want_old = True
            i += 1
        else:
            return SYNTAX
    exists = store.alive(key)
    old = store.data.get(key) if exists else None
    if (cond_kind == b"NX" and exists) or (cond_kind == b"XX" and not exists):
        return bulk(old) if want_old else NIL
    store.data[key] = value
    if deadline is not None:
        store.expires[key] = deadline
        store.log(b"SET", key, value, b"PXAT", b"%d" % deadline)
    elif keep_ttl and key in store.expires:
        store.log(b"SET", key, value, b"KEEPTTL")
    else:
        store.expires.pop(key, None)
        store.log(b"SET", key, value)
    return bulk(old) if want_old else OK


@command("del", -2)
def cmd_del(store: Store, args: list[bytes]) -> Reply:
    removed = []
    for key in args[1:]:
        if store.alive(key):
            del store.data[key]
            store.expires.pop(key, None)
            removed.append(key)
    if removed:
        store.log(b"DEL", *removed)
    return integer(len(removed))


COMMANDS[b"unlink"] = (cmd_del, -2)


@command("exists", -2)
def cmd_exists(store: Store, args: list[bytes]) -> Reply:
    return integer(sum(1 for key in args[1:] if store.alive(key)))


def add_to(store: Store, key: bytes, delta: int) -> Reply:
    current = 0
    if store.alive(key):
        parsed = parse_int(store.data[key])
        if parsed is None:
            return NOT_INTEGER
        current = parsed
    result = current + delta
    if not -(1 << 63) <= result < (1 << 63):
        return error("ERR increment or decrement would overflow")
    value = b"%d" % result
    store.data[key] = value
    store.log(b"SET", key, value, b"KEEPTTL")  # INCR keeps the TTL
    return integer(result)


@command("incr", 2)
def cmd_incr(store: Store, args: list[bytes]) -> Reply:
    return add_to(store, args[1], 1)


@command("decr", 2)
def cmd_decr(store: Store, args: list[bytes]) -> Reply:
    return add_to(store, args[1], -1)


@command("incrby", 3)
def cmd_incrby(store: Store, args: list[bytes]) -> Reply:
    delta = parse_int(args[2])
    return NOT_INTEGER if delta is None else add_to(store, args[1], delta)


@command("decrby", 3)
def cmd_decrby(store: Store, args: list[bytes]) -> Reply:
    delta = parse_int(args[2])
    return NOT_INTEGER if delta is None else add_to(store, args[1], -delta)


def expire_at(store: Store, key: bytes, deadline: int) -> Reply:
    if not store.alive(key):
        return integer(0)
    if deadline <= now_ms():  # a past deadline deletes, as in Redis
        del store.data[key]
        store.expires.pop(key, None)
        store.log(b"DEL", key)
        return integer(1)
    store.expires[key] = deadline
    store.log(b"PEXPIREAT", key, b"%d" % deadline)
    return integer(1)


def expire_command(scale: int, absolute: bool) -> Handler:
    def handler(store: Store, args: list[bytes]) -> Reply:
        amount = parse_int(args[2])
        if amount is None:
            return NOT_INTEGER
        if len(args) > 3:
            return error("ERR NX/XX/GT/LT options are not supported")
        deadline = amount * scale + (0 if absolute else now_ms())
        return expire_at(store, args[1], deadline)
    return handler


COMMANDS[b"expire"] = (expire_command(1000, False), -3)
COMMANDS[b"pexpire"] = (expire_command(1, False), -3)
COMMANDS[b"expireat"] = (expire_command(1000, True), -3)
COMMANDS[b"pexpireat"] = (expire_command(1, True), -3)


def ttl_command(scale: int) -> Handler:
    def handler(store: Store, args: list[bytes]) -> Reply:
        key = args[1]
        if not store.alive(key):
            return integer(-2)
        deadline = store.expires.get(key)
        if deadline is None:
            return integer(-1)
        left = max(0, deadline - now_ms())
        return integer((left + 500) // 1000 if scale == 1000 else left)
    return handler


COMMANDS[b"ttl"] = (ttl_command(1000), 2)
COMMANDS[b"pttl"] = (ttl_command(1), 2)


@command("persist", 2)
def cmd_persist(store: Store, args: list[bytes]) -> Reply:
    key = args[1]
    if store.alive(key) and store.expires.pop(key, None) is not None:
        store.log(b"PERSIST", key)
        return integer(1)
    return integer(0)


@command("keys", 2)
def cmd_keys(store: Store, args: list[bytes]) -> Reply:
    store.purge()
    pattern = redis_glob(args[1])
    if pattern == "*":
        return array(list(store.data))
    return array([k for k in store.data if fnmatchcase(k.decode("latin-1"), pattern)])


@command("dbsize", 1)
def cmd_dbsize(store: Store, args: list[bytes]) -> Reply:
    store.purge()
    return integer(len(store.data))


@command("flushdb", -1)
def cmd_flushdb(store: Store, args: list[bytes]) -> Reply:
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
        return SYNTAX
    store.data.clear()
    store.expires.clear()
    store.log(b"FLUSHDB")
    return OK


COMMANDS[b"flushall"] = (cmd_flushdb, -1)


@command("select", 2)
def cmd_select(store: Store, args: list[bytes]) -> Reply:
    return OK if args[1] == b"0" else error("ERR DB index is out of range")


@command("command", -1)
def cmd_command(store: Store, args: list[bytes]) -> Reply:
    """A stub: redis-cli asks ``COMMAND DOCS`` for its hints, and copes
    with an empty answer."""
    if len(args) > 1 and args[1].upper() == b"COUNT":
        return integer(len(COMMANDS))
    return b"*0\r\n"


@command("config", -2)
def cmd_config(store: Store, args: list[bytes]) -> Reply:
    """``CONFIG GET save|appendonly`` is what redis-benchmark asks first."""
    if args[1].upper() != b"GET" or len(args) != 3:
        return error("ERR CONFIG: only CONFIG GET is supported")
    known = {b"save": b"", b"appendonly": b"yes" if store.aof_path else b"no",
             b"databases": b"1"}
    pattern = redis_glob(args[2].lower())
    pairs: list[bytes] = []
    for name, value in known.items():
        if fnmatchcase(name.decode(), pattern):
            pairs += [name, value]
    return array(pairs)


@command("info", -1)
def cmd_info(store: Store, args: list[bytes]) -> Reply:
    store.purge()
    text = ("# Server\r\nredis_version:7.0.0-capsock-kv\r\nredis_mode:standalone\r\n"
            f"# Persistence\r\naof_enabled:{1 if store.aof_path else 0}\r\n"
            f"# Keyspace\r\ndb0:keys={len(store.data)},expires={len(store.expires)}\r\n")
    return bulk(text.encode())


@command("bgrewriteaof", 1)
def cmd_bgrewriteaof(store: Store, args: list[bytes]) -> Reply:
    store.flush()
    store.rewrite()
    return simple("Background append only file rewriting started")


def execute(store: Store, args: list[bytes], replaying: bool = False) -> Reply:
    """Run one command. While replaying the AOF, times are absolute and
    nothing is logged again."""
    name = args[0].lower()
    entry = COMMANDS.get(name)
    if entry is None:
        shown = " ".join(f"'{a.decode('latin-1')[:64]}'" for a in args[1:4])
        return error(f"ERR unknown command '{args[0].decode('latin-1')[:64]}', "
                     f"with args beginning with: {shown}")
    handler, arity = entry
    if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
        return error(f"ERR wrong number of arguments for '{name.decode('latin-1')}' command")
    if not replaying:
        return handler(store, args)
    pending = len(store.pending)
    reply = handler(store, args)
    del store.pending[pending:]
    return reply


# -- the server ---------------------------------------------------------------------
class Server:
    def __init__(self, loop: cg.Loop, store: Store) -> None:
        self.loop = loop
        self.store = store
        self.clients: set[cg.TcpStream] = set()
        self.commands = 0
        self.stopping = False

    async def connection(self, conn: cg.TcpStream) -> None:
        buf = bytearray()
        self.clients.add(conn)
        try:
            while chunk := await self.loop.recv(conn, 65536):
                buf += chunk
                replies: list[bytes] = []
                pos = 0
                quit_after = False
                try:
                    while True:
                        args, pos = parse_command(buf, pos)
                        if args is None:
                            break
                        if not args:
                            continue
                        self.commands += 1
                        if args[0].lower() == b"quit":
                            replies.append(OK)
                            quit_after = True
                            break
                        replies.append(execute(self.store, args))
                except ProtocolError as problem:
                    replies.append(error(f"ERR Protocol error: {problem}"))
                    quit_after = True
                del buf[:pos]
                self.store.flush()  # the log reaches the OS before any reply
                if replies:
                    await self.loop.sendall(conn, b"".join(replies))
                if quit_after:
                    return
        except cg.NetError:
            return
        finally:
            self.clients.discard(conn)
            self.loop.close(conn)

    async def accept_all(self, listener: cg.TcpListener) -> None:
        async for conn, _peer in self.loop.accept_forever(listener):
            self.loop.spawn(self.connection(conn))
        # the listener is gone (graceful shutdown): answer what was read,
        # then end every connection, and let the loop run out
        self.stopping = True
        for conn in list(self.clients):
            try:
                conn.shutdown("receive")
            except cg.NetError:
                pass

    async def expire_cycle(self) -> None:
        """Active expiry, so keys nobody reads again do not stay in memory."""
        while not self.stopping:
            await self.loop.sleep(0.5)
            self.store.sweep()


USAGE = "usage: kv [HOST:PORT] [--data DIR] [--file NAME] [--no-persist]"


def main(argv: list[str]) -> int:
    address: str | None = None
    data_dir = "/data"
    file_name = "kv.aof"
    persist = True
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--data" and rest:
            data_dir = rest.pop(0)
        elif arg == "--file" and rest:
            file_name = rest.pop(0)
        elif arg == "--no-persist":
            persist = False
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print(USAGE, file=sys.stderr)
            return 2
    if persist and not os.path.isdir(data_dir):
        print(f"kv: {data_dir} is not a pre-opened directory (--dir HOSTDIR::{data_dir}); "
              "use --no-persist to keep data in memory only", file=sys.stderr)
        return 1
    store = Store(data_dir.rstrip("/") + "/" + file_name if persist else None)
    applied, cut = store.load()
    if store.aof_path:
        print(f"kv: replayed {applied} commands from {store.aof_path}, "
              f"{len(store.data)} keys" + (f" (cut a torn tail of {cut} bytes)" if cut else ""),
              flush=True)
    if address:
        listener = cg.listen(cg.parse_address(address))
    else:
        listeners = cg.preopened_tcp_listeners()
        if not listeners:
            print("kv: no address given and no pre-opened TCP listener", file=sys.stderr)
            return 1
        listener = listeners[0]
    print(f"listening on {cg.format_address(listener.local_address())}", flush=True)
    loop = cg.Loop()
    server = Server(loop, store)
    with listener:
        loop.spawn(server.accept_all(listener))
        loop.spawn(server.expire_cycle())
        loop.run()
    store.flush()
    print(f"kv: served {server.commands} commands", flush=True)
    return 0


Run = cg.run_main(main)
