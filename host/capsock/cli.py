"""`capsock`: run WebAssembly components with capability-based networking."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeAlias

from .backends.base import Backend
from .backends.os import OsBackend
from .core.limits import LIMIT_FLAGS, Limits
from .core.tls import TlsListenSpec, TlsSettings
from .policy import DEFAULT_VIRTUAL_RANGE, PolicyError
from .policy.config import (
    RULE_KINDS,
    Located,
    PolicyConfig,
    RuleQuota,
    merge,
    validate_rule,
)
from .runtime import GuestKilled, Host, KillSwitch, RunError
from .runtime.configure import ConfigError, limits_of, open_audit_log

if TYPE_CHECKING:
    from wasmtime import Engine

    from .core.audit import AuditLog
    from .runtime.activation import InheritedSocket
    from .runtime.metrics import Metrics

RULES_HELP = """\
policy (deny by default; a deny rule always wins over an allow rule):
  Address rules are PROTO://HOST:PORT with PROTO tcp or udp, HOST an IPv4
  address, an [IPv6] address in brackets, a CIDR range (10.0.0.0/8,
  [fd00::/8]), localhost, a network group, a domain name, *.NAME (what
  NAME's subdomains resolved to), or *, and PORT a number, a range LO-HI,
  or *. IPv4-mapped IPv6 addresses are judged by the IPv4 rules.
  Groups: private (RFC 1918, 100.64/10, fc00::/7, link-local), loopback,
  metadata (169.254.169.254, fd00:ec2::254, ...), multicast, special
  (IANA special-purpose registries); IPv6 forms embedding a member's IPv4
  address (NAT64, 6to4, ...) are members (SECURITY.md, "Network groups").

  --allow-outbound=tcp://127.0.0.1:80   connect to 127.0.0.1 port 80
  --allow-outbound=tcp://*:443          connect to any host on port 443
  --allow-inbound=tcp://127.0.0.1:*     bind/listen on 127.0.0.1, any port
  --deny-outbound=tcp://10.0.0.0/8:*    never connect into 10.0.0.0/8
  --deny-outbound=tcp://private:*       never connect into a private range
  --allow-outbound=udp://[::1]:53       send UDP to [::1]:53 (and receive
                                        from it on any socket)
  --allow-inbound=udp://127.0.0.1:*     bind UDP on 127.0.0.1; such a socket
                                        receives from any sender
  --allow-outbound=tcp://svc.test:80    connect to the addresses this guest
                                        got by resolving svc.test (and
                                        allows resolving it)
  --allow-resolve=*.example.com         resolve subdomains of example.com
                                        at any depth (not example.com)
  --addr-pool=127.0.0.0/8,::1/128       WAMR syntax: CIDR ranges, any port,
                                        both directions (ADDRESS/MASK only)

virtual addresses (GUEST->REAL: the guest sees only the left side; the host
translates both ways; each mapping also allows exactly its guest side):
  --allow-resolve=db.internal->127.0.0.2
                                        resolving db.internal answers
                                        127.0.0.2 (an alias, no query)
  --allow-resolve=db.internal->db.example
                                        answers a virtual address from
                                        --virtual-range; traffic to it goes
                                        to db.example, resolved by the host
                                        at connect time
  --allow-outbound=tcp://db.internal->127.0.0.2:5432->5433
                                        connect to db.internal:5432 (a
                                        virtual address) reaches
                                        127.0.0.2:5433
  --allow-outbound=tcp://10.225.0.32/29->192.168.225.8/29:*
                                        a range mounted as a range of the
                                        same size (offsets kept)
  --allow-inbound=tcp://*:80->8888      the guest binds port 80, the host
                                        listens on 8888 (same address)
  Overlapping mappings stop capsock at start-up, naming both rules. Deny
  rules judge the guest-side address and the real one; a guest's restrict
  rules judge the guest-side address only.

  A denied operation returns access-denied to the guest and makes no
  system call toward the target (no connection, no datagram, no DNS
  query). A connect or UDP send on an unbound socket binds an ephemeral
  port without an inbound rule, unless a --deny-inbound rule matches
  0.0.0.0:0 or [::]:0 (e.g. udp://*:*). A UDP socket only gets
  datagrams from senders it may send to, unless it is pre-opened or
  --allow-inbound allows its local address; others are dropped. It may
  reply to a sender it got a datagram from (unless --deny-outbound).
  A malformed rule stops capsock before the guest starts, with a message
  naming the rule.

policy files (--policy FILE, TOML; README "Operator's guide"): every flag
  above by section ([resolve], [outbound], [inbound], [limits], [preopens],
  [host], [audit]); flags add rules to the file and replace its single
  values. capsock policy check|explain|suggest work on them.

examples:
  capsock run --tcplisten 127.0.0.1:8080 build/echo.wasm
  capsock run --policy service.toml build/http.wasm
  capsock run --allow-outbound=tcp://127.0.0.1:8080 build/client.wasm 127.0.0.1:8080 hi
  capsock run --udpbind 127.0.0.1:5353 build/udpecho.wasm
  capsock run --dns 127.0.0.1:5353 --allow-resolve=*.test build/resolve.wasm svc.test
"""

def _package_version() -> str:
    # Imported here: importlib.metadata costs ~28 ms, on every start if at the top.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("capsock")
    except PackageNotFoundError:
        return "0.1.0"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for (argparse's own action
    needs the string when the parser is built, i.e. on every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.exit(message=f"capsock {_package_version()}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `capsock` parser. With `argv` naming a command, only that command's
    subparser is built: argparse's per-flag work (~10 ms for all four
    commands' flags) is on every start, and one command never parses another's
    flags. Without (or for `capsock --help`), every command is there."""
    parser = argparse.ArgumentParser(
        prog="capsock",
        description="Run WebAssembly components with capability-based, "
                    "deny-by-default networking (capsock:net@0.2.0).",
        epilog="Run `capsock run --help` for the policy flags.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _named_command(sys.argv[1:] if argv is None else argv)
    for name, add_command in _COMMANDS.items():
        if wanted is None or wanted == name:
            add_command(commands)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names (its first non-option word), if it is one."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in _COMMANDS else None
    return None


_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_run(commands: _Commands) -> None:
    # allow_abbrev=False (run and serve): the guest's arguments follow the
    # component, and argparse would read a guest's `--max-bytes` as an
    # abbreviation of capsock's flags (or refuse it as ambiguous).
    run = commands.add_parser(
        "run", allow_abbrev=False,
        help="run a component that exports wasi:cli/run (like `wasmtime run`)",
        description="Run COMPONENT's wasi:cli/run export with ARGS as its arguments. "
                    "stdin, stdout and stderr are inherited; the guest's exit code "
                    "becomes capsock's.",
        epilog=RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_instance_flags(run)
    run.add_argument("component", metavar="COMPONENT", help="the component (.wasm) to run")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments passed to the guest")


def _add_conformance(commands: _Commands) -> None:
    conformance = commands.add_parser(
        "conformance",
        help="check a host against the capsock:net contract, case by case",
        description="Run the conformance probes case by case: for each setup, start its "
                    "peers (echo servers, a DNS server...), grant its rules, run the probe, "
                    "and compare each outcome with the case table "
                    "(capsock/conformance/cases.py). Core cases run on the core probe; the "
                    "cases of an extension (fast-io) run on its probe, only for a host that "
                    "implements it. Exit 0 when every case passes.",
    )
    conformance.add_argument("--backend", choices=("os", "memory"), default="os",
                             help="the backend to check (default: os)")
    conformance.add_argument("--component", type=Path, default=None, metavar="WASM",
                             help="the core probe (default: the probe shipped with capsock, "
                                  "capsock/conformance/probe/app.py, built for the core world "
                                  "with the build extra and cached)")
    conformance.add_argument("--fast-io-component", type=Path, default=None, metavar="WASM",
                             help="the probe built with the extensions (fast-io, tls; "
                                  "default: the shipped probe, built so and cached)")
    conformance.add_argument("--extensions", default=None, metavar="LIST",
                             help="the extensions the host implements, comma-separated "
                                  "(default: this capsock's, fast-io,tls; with --host-command: "
                                  "none, say what the other host implements)")
    conformance.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                             help="where the built probes are cached "
                                  "(default: $CAPSOCK_CACHE_DIR or ~/.cache/capsock)")
    conformance.add_argument("--json", type=Path, default=None, metavar="FILE",
                             help="also write the results as JSON")
    conformance.add_argument("--junit", type=Path, default=None, metavar="FILE",
                             help="also write the results as JUnit XML")
    conformance.add_argument("-k", "--select", default=None, metavar="TEXT",
                             help="only cases whose id contains TEXT")
    conformance.add_argument("--host-command", default=None, metavar="TEMPLATE",
                             help="check ANOTHER host: a shell command template with "
                                  "{flags} (the setup's rules as capsock flags), {component} "
                                  "and {args}; its stdout is the guest's report. See "
                                  "docs/conformance.md")
    conformance.add_argument("--wasi-sockets", action="store_true",
                             help="run the wasi:sockets@0.2 section instead: the probe of "
                                  "capsock/conformance/wasi/ (built against the standard WASI "
                                  "WIT; --component to give one), its cases per function and "
                                  "per policy decision; with --host-command, {args} is the "
                                  "plan. bench/wasi_conformance.py puts the wasmtime CLI and "
                                  "jco beside capsock")


def _add_build(commands: _Commands) -> None:
    build = commands.add_parser(
        "build",
        help="build a Python script or app into a capsock component (componentize-py)",
        description="Build APP.py into a component that exports wasi:cli/run and imports "
                    "capsock:net, with componentize-py against capsock's WIT (shipped with "
                    "capsock). APP.py may be a plain script "
                    "written for `python APP.py` (its code runs at run time, sys.argv comes "
                    "from `capsock run ... APP.wasm ARGS`, and `import socket` is capsock's "
                    "BSD layer), or a module exporting `Run` (capsock_guest.run_main). "
                    "What is bundled: every module APP.py imports, anywhere in it (inside "
                    "functions and try blocks too), followed through the modules of APP.py's "
                    "folder and the pure-Python packages they reach, found in this order: the "
                    "standard library, APP.py's folder, the --requirements/--with packages "
                    "(pip-installed for the guest, cached), each --path DIR, then the "
                    "environment running `capsock build` (pip install a package next to "
                    "capsock, or `pip install --target DIR pkg` and pass --path DIR). Each "
                    "module is imported at build time, so lazy imports (bottle's wsgiref) "
                    "work; a third-party package is imported whole (every submodule: "
                    "packages also import by string, as uvicorn picks its loop). A "
                    "package with a C extension is refused by name (noted instead when only "
                    "a conditional import reaches it, as uvicorn's uvloop). An import found "
                    "nowhere "
                    "is a warning (an error with --strict) when the module cannot load "
                    "without it (top level, outside if/try/def), else listed in one note. "
                    "Builds are cached by the hash of everything bundled, then compiled into "
                    "the compilation cache that `capsock run` reads (see `capsock compile`), "
                    "so the first run starts warm. Needs the `build` extra "
                    "(pip install 'capsock[build]').",
    )
    build.add_argument("script", type=Path, metavar="APP.py", help="the script to build")
    build.add_argument("-o", "--output", type=Path, default=None, metavar="APP.wasm",
                       help="the component to write (default: APP.wasm next to APP.py)")
    build.add_argument("--path", dest="search", type=Path, action="append", default=[],
                       metavar="DIR", help="also look for imported packages in DIR (e.g. "
                                           "made by `pip install --target DIR`); repeatable, "
                                           "searched in order before the environment")
    build.add_argument("--requirements", type=Path, action="append", default=[],
                       metavar="FILE", help="pip-install this requirements file for the guest "
                                            "(pure-Python wheels for its Python 3.14 only; a "
                                            "package with a C extension fails the build by "
                                            "name) into a folder cached by the file's content, "
                                            "searched first; repeatable")
    build.add_argument("--with", dest="with_packages", action="append", default=[],
                       metavar="PKG", help="pip-install PKG (a requirement: 'h11==0.16.0') "
                                           "for the guest, as a line of --requirements; "
                                           "repeatable")
    build.add_argument("--include", action="append", default=[], metavar="MODULE",
                       help="also bundle MODULE, as if APP.py imported it: for modules only "
                            "imported by name at run time (importlib.import_module, plugins) "
                            "or lazily by the standard library itself; repeatable (a guest "
                            "missing one names it and this flag)")
    build.add_argument("--no-environment", action="store_true",
                       help="do not take packages from the environment running the build: "
                            "only the script's folder, --requirements/--with and --path")
    build.add_argument("--strict", action="store_true",
                       help="fail when a top-level import cannot be bundled")
    build.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                       help="build and compilation cache (default: $CAPSOCK_CACHE_DIR or "
                            "~/.cache/capsock)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--no-compile", action="store_true",
                       help="do not compile the component into the compilation cache")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_compile(commands: _Commands) -> None:
    compile_ = commands.add_parser(
        "compile",
        help="compile components into the compilation cache (like `wasmtime compile`)",
        description="Compile each COMPONENT with the engine `capsock run` uses and store the "
                    "result in the compilation cache, so that the first `capsock run` of it "
                    "starts in milliseconds instead of compiling (~10 s for a "
                    "componentize-py guest). Already cached components take milliseconds.",
    )
    compile_.add_argument("components", nargs="+", type=Path, metavar="COMPONENT",
                          help="the components (.wasm) to compile")
    compile_.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                          help="the compilation cache (default: $CAPSOCK_CACHE_DIR or "
                               "~/.cache/capsock)")
    compile_.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_serve(commands: _Commands) -> None:
    serve = commands.add_parser(
        "serve", allow_abbrev=False,  # see _add_run
        help="run N instances of a server component on shared pre-opened listeners",
        description="Run --instances copies of COMPONENT, each with its own store, all "
                    "accepting from the same --tcplisten sockets (and those a launcher passed: "
                    "socket activation). Each instance sees "
                    "CAPSOCK_INSTANCE (0..N-1) in its environment. SIGINT/SIGTERM stop "
                    "accepting, let in-flight work finish for --grace seconds, close every "
                    "socket and exit 0.",
        epilog=RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--instances", type=int, default=2, metavar="N",
                       help="how many instances to run (default: 2)")
    serve.add_argument("--mode", choices=("process", "thread"), default="process",
                       help="instances as forked processes (default; scales across cores) "
                            "or threads of one process (one GIL)")
    serve.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                       help="how long in-flight work may take after a stop signal "
                            "(default: 10)")
    serve.add_argument("--restart", choices=("no", "on-failure", "always"), default="no",
                       help="run an instance that ended again: on-failure (exit code not "
                            "0) or always; the delay doubles from 0.1 s to 10 s while it "
                            "keeps ending within 10 s (default: no)")
    add_instance_flags(serve)
    serve.add_argument("component", metavar="COMPONENT", help="the component (.wasm) to run")
    serve.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="arguments passed to every instance")


def _add_policy(commands: _Commands) -> None:
    policy = commands.add_parser(
        "policy",
        help="check a policy file, explain a decision, suggest rules from an audit log",
        description="Tools for policy files (README, \"Operator's guide\"): check validates one "
                    "and prints the effective rules with the line each came from; explain "
                    "says which rule decides an operation and why; suggest reads an audit "
                    "log (JSON lines, e.g. from --policy-mode=audit) and prints the narrowest "
                    "rules that would have allowed what it saw.",
    )
    tools = policy.add_subparsers(dest="policy_command", metavar="TOOL", required=True)
    check = tools.add_parser("check", help="validate FILE and print its effective rules")
    check.add_argument("file", type=Path, metavar="FILE")
    explain = tools.add_parser(
        "explain", help="which rule decides OPERATION on TARGET, and why",
        description="OPERATION is a typed use: tcp-connect, tcp-bind, udp-send, udp-connect, "
                    "udp-bind, udp-receive, udp-reply, resolve (and the implicit binds). "
                    "TARGET is ADDRESS:PORT, [IPV6]:PORT, NAME:PORT (judged on the addresses "
                    "given with --resolved) or, for resolve, a NAME.")
    explain.add_argument("file", type=Path, metavar="FILE")
    explain.add_argument("operation", metavar="OPERATION")
    explain.add_argument("target", metavar="TARGET")
    explain.add_argument("--resolved", action="append", default=[], metavar="NAME=ADDRESS",
                         help="treat NAME as having resolved to ADDRESS (repeatable)")
    suggest = tools.add_parser(
        "suggest", help="the narrowest rules that allow what an audit log saw denied",
        description="Read AUDIT (the JSON lines of --audit-log; run the workload with "
                    "--policy-mode=audit to see everything it does) and print the narrowest "
                    "rules that allow each would-deny or denied operation, as flags and as a "
                    "policy file.")
    suggest.add_argument("audit", type=Path, metavar="AUDIT.jsonl")
    suggest.add_argument("--format", choices=("both", "flags", "toml"), default="both",
                         help="what to print (default: both)")
    suggest.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                         help="also write the suggested policy file to FILE")


_COMMANDS: dict[str, Callable[[_Commands], None]] = {
    "run": _add_run, "conformance": _add_conformance, "build": _add_build, "serve": _add_serve,
    "compile": _add_compile, "policy": _add_policy,
}


def add_instance_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that configure a guest instance (shared by run and serve)."""
    add_policy_flags(parser)
    group = parser.add_argument_group("pre-opened sockets and runtime")
    group.add_argument("--tcplisten", action="append", default=[], metavar="HOST:PORT",
                       help="pre-open a listening TCP socket for the guest (repeatable); "
                            "port 0 picks a free port. The guest gets it from "
                            "preopened-sockets(); it needs no --allow-inbound rule")
    group.add_argument("--udpbind", action="append", default=[], metavar="HOST:PORT",
                       help="pre-open a bound UDP socket for the guest (repeatable); "
                            "port 0 picks a free port. Datagrams to it are delivered "
                            "from any sender; it needs no --allow-inbound rule")
    group.add_argument("--no-socket-activation", action="store_true",
                       help="ignore sockets passed by a launcher (systemd socket activation: "
                            "LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). By default each one "
                            "passed to this process is a pre-open named by its fd name, "
                            "checked to be a listening TCP or a bound UDP socket; the "
                            "variables are then unset")
    group.add_argument("--dir", action="append", default=[], dest="dirs",
                       metavar="HOSTDIR::GUESTDIR",
                       help="pre-open host directory HOSTDIR read-write for the guest's "
                            "files at GUESTDIR, like `wasmtime run --dir` (repeatable; "
                            "DIR alone maps DIR to itself)")
    group.add_argument("--wasi-sockets", dest="wasi", action="store_const", const="capsock",
                       default="auto",
                       help="serve all of the guest's WASI 0.2 (io, clocks, random, cli, "
                            "filesystem, sockets) from capsock's own host, so its "
                            "wasi:sockets obey the policy flags. Chosen by default for a "
                            "component importing wasi:sockets but not capsock:net (a stock "
                            "componentize-py, Rust or C component); otherwise wasmtime's "
                            "WASI serves it, whose wasi:sockets deny everything")
    group.add_argument("--dns", default=None, metavar="HOST:PORT",
                       help="resolve names by asking this DNS server (UDP, A and AAAA) "
                            "instead of the system resolver")
    group.add_argument("--backend", choices=("os", "memory"), default="os",
                       help="os (default): real sockets. memory: a virtual in-process "
                            "network (no OS sockets; --tcplisten/--udpbind make virtual "
                            "sockets on 127.0.0.0/8 and ::1, reachable only from Python "
                            "code in the same process: for tests and embedders; names "
                            "resolve from its empty name table). Not with serve or --dns")
    group.add_argument("--peer-address", choices=("real", "hidden"), default="real",
                       help="hidden: accept, remote-address (of accepted sockets) and UDP "
                            "receive return 192.0.0.8:0 / [100::]:0 instead of the peer "
                            "(policy still applies to the real address). Default: real")
    group.add_argument("--audit-log", default=None, metavar="FILE|-|syslog://HOST:PORT",
                       help="write one JSON line per policy decision (time, instance, "
                            "operation, target, allowed, rule): appended to FILE, to stderr "
                            "(-), or to a syslog collector as RFC 5424 "
                            "(syslog://, syslog+udp://, syslog+tcp://HOST:PORT). Written by "
                            "a thread from a bounded queue: a full disk or a slow collector "
                            "drops lines (counted, said once), never stalls the guest")
    group.add_argument("--audit-log-max-bytes", type=int, default=0, metavar="N",
                       help="rotate the --audit-log FILE when it reaches N bytes "
                            "(FILE -> FILE.1 -> FILE.2 ...; default 0: never)")
    group.add_argument("--audit-log-backups", type=int, default=5, metavar="N",
                       help="rotated files kept (default: 5)")
    group.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                       help="where compiled components are cached "
                            "(default: $CAPSOCK_CACHE_DIR or ~/.cache/capsock)")
    group.add_argument("--metrics", default=None, metavar="HOST:PORT",
                       help="serve Prometheus metrics over HTTP on HOST:PORT (any path, "
                            "e.g. /metrics): decisions per rule, limits hit, connections, "
                            "bytes, restarts, audit lines dropped; needs the metrics extra "
                            "(pip install 'capsock[metrics]'). Port 0 picks one (printed)")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="log every denied operation to stderr")
    tls = parser.add_argument_group(
        "TLS", "TLS is done by the host: keys and the trust store never enter the guest")
    tls.add_argument("--tls-ca", action="append", default=[], type=Path, metavar="FILE",
                     help="trust the CA certificates of this PEM bundle for the guest's TLS "
                          "client connections, beside the system's (repeatable)")
    tls.add_argument("--tls-ca-only", action="store_true",
                     help="trust only the --tls-ca bundles, not the system's store")
    tls.add_argument("--tls-listen", action="append", default=[], metavar="HOST:PORT",
                     help="pre-open a TCP listener whose connections the host TLS-terminates "
                          "with --tls-cert/--tls-key (repeatable; port 0 picks a free port): "
                          "the guest accepts plaintext connections, as from --tcplisten")
    tls.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                     help="the PEM certificate chain of the --tls-listen listeners")
    tls.add_argument("--tls-key", type=Path, default=None, metavar="FILE",
                     help="the PEM private key of --tls-cert (read by the host only)")
    tls.add_argument("--tls-client-ca", type=Path, default=None, metavar="FILE",
                     help="require clients of --tls-listen to present a certificate issued "
                          "by a CA of this PEM bundle (the guest sees the verified subject "
                          "and SANs)")
    limits = parser.add_argument_group(
        "per-instance limits",
        "quotas refuse with limit-reached and an audit line; caps shrink a request")
    defaults = Limits()
    for flag, name, kind, text in LIMIT_FLAGS:
        # default None: a flag given replaces a policy file's value, one
        # left out does not (`limits_of`).
        default = getattr(defaults, name)
        limits.add_argument(flag, dest=f"limit_{name}", type=kind, default=None,
                            metavar="N", help=f"{text} (default: "
                                              f"{'none' if default is None else default})")
    limits.add_argument("--max-rule-connections", action="append", default=[],
                        metavar="RULE=N", help="connections one allow rule (its PROTO://HOST:PORT "
                                               "text) may carry at once (quota; repeatable)")




def limits_from_args(args: argparse.Namespace) -> Limits:
    """The `--max-*` flags as Limits; a bad value names its flag."""
    return limits_of(config_from_args(args))


def config_from_args(args: argparse.Namespace) -> PolicyConfig:
    """The flags as a `PolicyConfig` located at the flags (merged over a
    `--policy` file by `host_from_args`)."""
    rules = {kind: tuple(Located(text, f"--{kind}")
                         for text in getattr(args, kind.replace("-", "_"), []))
             for kind in RULE_KINDS}
    for kind, entries in rules.items():
        for entry in entries:
            validate_rule(kind, entry.value, entry.where)
    limits = {flag.removeprefix("--"): (value, flag) for flag, name, _, _ in LIMIT_FLAGS
              if (value := getattr(args, f"limit_{name}", None)) is not None}
    quotas = []
    for text in getattr(args, "max_rule_connections", []):
        rule, _, count = text.rpartition("=")
        if not rule or not count.isdigit() or int(count) < 1:
            raise PolicyError(f"invalid --max-rule-connections {text!r}: expected "
                              "PROTO://HOST:PORT=N with N at least 1")
        validate_rule("allow-outbound", rule, "--max-rule-connections")
        quotas.append(RuleQuota(f"allow {rule.strip()}", int(count),
                                "--max-rule-connections"))

    def single(name: str, flag: str) -> Located | None:
        value = getattr(args, name, None)
        return None if value is None else Located(str(value), flag)

    return PolicyConfig(rules=rules, limits=limits, rule_quotas=tuple(quotas),
                        tcplisten=tuple(Located(t, "--tcplisten") for t in args.tcplisten),
                        udpbind=tuple(Located(t, "--udpbind") for t in args.udpbind),
                        dirs=tuple(Located(t, "--dir") for t in args.dirs),
                        dns=single("dns", "--dns"),
                        peer_address=single("peer_address", "--peer-address"),
                        audit_log=single("audit_log", "--audit-log"),
                        mode=single("policy_mode", "--policy-mode"),
                        virtual_range=single("virtual_range", "--virtual-range"))


def config_with_file(args: argparse.Namespace) -> PolicyConfig:
    """The flags merged over the `--policy` file, if any (`merge`)."""
    flags = config_from_args(args)
    if getattr(args, "policy", None) is None:
        return flags
    from .policy.loader import load_policy

    return merge(load_policy(args.policy), flags)


def host_from_args(args: argparse.Namespace) -> Host:
    """Build the Host the instance flags (and the `--policy` file) describe
    (no sockets opened yet): one `PolicyConfig`, turned into the Host by
    `Host(policy=config)` as an embedder's `Host(policy=FILE)` is."""
    try:
        config = config_with_file(args)
    except PolicyError as error:
        raise ConfigError(str(error)) from None
    backend: Backend = OsBackend()
    if args.backend == "memory":
        if getattr(args, "command", None) == "serve":
            raise ConfigError("--backend memory: serve shares OS listeners between instances; "
                              "a virtual network is reachable only in-process (use run, or "
                              "the Python API)")
        if config.dns is not None:
            raise ConfigError(f"--backend memory: {config.dns.where} would query a real DNS "
                              "server; the virtual network resolves from its own name table")
        from .backends.memory import MemoryBackend, VirtualNetwork  # only this flag needs it

        backend = MemoryBackend(VirtualNetwork())
    tls, tls_listens = tls_from_args(args)
    inherited = inherited_from_args(args, backend)
    # The audit log is opened here rather than by the config's host parts:
    # the rotation flags go with it (the file's `[audit] log` or the flag).
    audit = audit_from_config(args, config)
    try:
        return Host(policy=config._replace(audit_log=None), cache_dir=args.cache_dir,
                    backend=backend, audit_log=audit, inherited=inherited, tls=tls,
                    tls_listen=tls_listens, wasi=args.wasi)
    except PolicyError as error:
        if audit is not None:
            audit.close()
        raise ConfigError(str(error)) from None


def audit_from_config(args: argparse.Namespace, config: PolicyConfig) -> AuditLog | None:
    """The audit log `--audit-log` or the file's `[audit] log` names (a
    file, `-` or a syslog URL), with the rotation flags; None without one."""
    if args.audit_log_max_bytes < 0 or args.audit_log_backups < 0:
        raise ConfigError("--audit-log-max-bytes and --audit-log-backups must be >= 0")
    return open_audit_log(config, args.audit_log_max_bytes, args.audit_log_backups)


def inherited_from_args(args: argparse.Namespace, backend: Backend) -> list[InheritedSocket]:
    """The sockets a launcher passed (LISTEN_FDS...), unless
    --no-socket-activation; a socket that is not what a pre-open must be
    is a ConfigError naming its descriptor."""
    if getattr(args, "no_socket_activation", False):
        return []
    from .runtime.activation import ActivationError, inherited_sockets

    try:
        inherited = inherited_sockets()
    except ActivationError as error:
        raise ConfigError(f"socket activation: {error}") from None
    if inherited and not isinstance(backend, OsBackend):
        for sock in inherited:
            sock.sock.close()
        raise ConfigError("socket activation: the inherited sockets are OS sockets; "
                          "--backend memory cannot use them (use --no-socket-activation)")
    return inherited


def tls_from_args(args: argparse.Namespace) -> tuple[TlsSettings, list[TlsListenSpec]]:
    """The TLS flags: the client trust settings and the host-terminated
    listeners, every file loaded once now so a bad one is named at start-up."""
    settings = TlsSettings(tuple(args.tls_ca), args.tls_ca_only)
    if args.tls_ca_only and not args.tls_ca:
        raise ConfigError("--tls-ca-only needs at least one --tls-ca bundle")
    try:
        if args.tls_ca:
            settings.check()
    except ValueError as error:
        raise ConfigError(f"invalid --tls-ca: {error}") from None
    specs = []
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_listen and args.tls_cert is None:
        raise ConfigError("--tls-listen needs --tls-cert and --tls-key")
    if args.tls_client_ca is not None and not args.tls_listen:
        raise ConfigError("--tls-client-ca applies to --tls-listen listeners: give one")
    for text in args.tls_listen:
        try:
            spec = TlsListenSpec.parse(text, args.tls_cert, args.tls_key, args.tls_client_ca)
            spec.server_context()
        except ValueError as error:
            raise ConfigError(f"invalid --tls-listen: {error}") from None
        specs.append(spec)
    return settings, specs


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policy")
    group.add_argument("--policy", type=Path, default=None, metavar="FILE",
                       help="read rules, limits, quotas, pre-opens, dns and audit settings "
                            "from a TOML policy file (README, 'Policy files'); flags add "
                            "rules and pre-opens to it and replace its single values")
    group.add_argument("--policy-mode", choices=("enforce", "audit"), default=None,
                       help="audit: allow what the policy would deny and log it as "
                            "would-deny in the audit log (default: enforce)")
    for flag, text in (
        ("allow-outbound", "allow connecting to PROTO://HOST:PORT"),
        ("allow-inbound", "allow binding/listening on PROTO://HOST:PORT"),
        ("deny-outbound", "deny connecting to PROTO://HOST:PORT (wins over allows)"),
        ("deny-inbound", "deny binding/listening on PROTO://HOST:PORT (wins over allows)"),
        ("allow-resolve", "allow resolving NAME, *.NAME (subdomains at any depth) or *"),
        ("deny-resolve", "deny resolving NAME, *.NAME or *"),
        ("addr-pool", "WAMR-style comma-separated ADDRESS/MASK list: any port, "
                      "both directions"),
    ):
        group.add_argument(f"--{flag}", action="append", default=[], metavar="RULE",
                           help=f"{text} (repeatable)")
    group.add_argument("--virtual-range", metavar="CIDR",
                       help="where names mapped to a real name (--allow-resolve=NAME->REALNAME, "
                            "--allow-outbound=tcp://NAME->...) get their guest-side address, "
                            f"lowest free first (default: {DEFAULT_VIRTUAL_RANGE})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        import logging  # without -v, Python's last-resort handler prints warnings the same way

        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "build":
        return run_build(args)
    if args.command == "conformance":
        return run_conformance(args)
    if args.command == "compile":
        return run_compile(args)
    if args.command == "policy":
        from .policytool import run_policy_tool  # only this command needs it

        return run_policy_tool(args)
    try:
        host = host_from_args(args)
    except ConfigError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2
    if not Path(args.component).is_file():
        print(f"capsock: error: no such component: {args.component}", file=sys.stderr)
        return 2
    guest_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        return _run_or_serve(args, host, guest_args)
    finally:
        if host.audit_log is not None:  # drains its queue (bounded)
            host.audit_log.close()


def _run_or_serve(args: argparse.Namespace, host: Host, guest_args: Sequence[str]) -> int:
    """`capsock run` / `capsock serve` on a configured Host."""
    try:
        metrics = start_metrics(args.metrics, multiprocess=args.command == "serve"
                                and args.mode == "process")
    except ConfigError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2
    if metrics is not None and host.audit_log is not None:
        host.audit_log.on_drop = metrics.audit_lines_dropped
    if args.command == "serve":
        try:
            from .runtime.serve import Server  # only `serve` needs it

            server = Server(host, args.component, guest_args, args.instances, args.mode,
                            args.grace, args.restart, metrics)
        except ValueError as error:
            if metrics is not None:
                metrics.close()
            print(f"capsock: error: {error}", file=sys.stderr)
            return 2
        try:
            return server.serve()
        except RunError as error:
            print(f"capsock: error: {error}", file=sys.stderr)
            return 2
    try:
        return run_killable(host, args.component, guest_args, metrics)
    except RunError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a broken component file, a link error
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2
    finally:
        if metrics is not None:
            metrics.close()


def start_metrics(address: str | None, multiprocess: bool) -> Metrics | None:
    """`--metrics`: the metrics, served on `address` (said on stderr), or
    None without the flag. A missing package or a bad address is a
    ConfigError."""
    if address is None:
        return None
    from .runtime.metrics import Metrics, MetricsError  # prometheus_client: only with the flag

    try:
        metrics = Metrics(multiprocess=multiprocess)
    except MetricsError as error:
        raise ConfigError(str(error)) from None
    try:
        host, port = metrics.serve_http(address)
    except MetricsError as error:
        metrics.close()
        raise ConfigError(str(error)) from None
    shown = f"[{host}]" if ":" in host else host
    print(f"capsock: metrics on http://{shown}:{port}/metrics", file=sys.stderr, flush=True)
    return metrics


def run_killable(host: Host, component: str, guest_args: Sequence[str],
                 metrics: Metrics | None = None) -> int:
    """`capsock run`: the guest in a thread, so SIGINT/SIGTERM can kill it.

    The main thread only waits; Python runs signal handlers there, even
    while the guest spins in wasm or blocks in `accept` (which, run on the
    main thread, made Ctrl-C do nothing at all). The first signal kills the
    guest through a KillSwitch (teardown as usual, exit 128+signal); a
    second one exits at once, for a guest stuck where a kill cannot reach
    (wasmtime's own WASI calls: sleep, reading stdin).
    """
    switch = KillSwitch()
    outcome: list[int | BaseException] = []
    received: list[int] = []

    def guest() -> None:
        if metrics is not None:
            metrics.running.inc()
        try:
            if metrics is not None:
                outcome.append(host.run(component, guest_args, kill_switch=switch,
                                        observer=metrics.instance("0")))
            else:
                outcome.append(host.run(component, guest_args, kill_switch=switch))
        except BaseException as error:  # handed to the main thread
            outcome.append(error)
        finally:
            if metrics is not None:
                metrics.running.dec()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        print(f"capsock: {signal.Signals(signum).name}: killing the guest", file=sys.stderr,
              flush=True)
        switch.kill(f"{signal.Signals(signum).name} received")

    thread = threading.Thread(target=guest, name="capsock-guest")
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread.start()
        thread.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    result = outcome[0] if outcome else RunError("the guest thread ended without an outcome")
    if isinstance(result, GuestKilled) and received:
        return 128 + received[0]
    if isinstance(result, BaseException):
        raise result
    return result


def run_conformance(args: argparse.Namespace) -> int:
    if args.wasi_sockets:
        return run_wasi_conformance(args)
    from .binding import EXTENSIONS
    from .conformance import harness  # imports dnspython; only this command needs it

    if args.extensions is not None:
        extensions = [name.strip() for name in args.extensions.split(",") if name.strip()]
    else:
        extensions = [] if args.host_command else list(EXTENSIONS)
    unknown = [name for name in extensions if name not in ("fast-io", "tls")]
    if unknown:
        print(f"capsock: error: no conformance cases for extension(s) {', '.join(unknown)} "
              "(known: fast-io, tls)", file=sys.stderr)
        return 2
    core = args.component or _build_probe(args.cache_dir, core=True)
    if core is None:
        return 2
    found: dict[str, Path] = {}
    if extensions:
        # One probe, built for the world with every extension, runs the
        # cases of each extension the host implements.
        extended = args.fast_io_component or _build_probe(args.cache_dir, core=False)
        if extended is None:
            return 2
        for name in extensions:
            found[name] = extended
    probes = harness.Probes(core, found)
    for path in [probes.core, *probes.extensions.values()]:
        if not path.is_file():
            print(f"capsock: error: no conformance probe at {path}", file=sys.stderr)
            return 2
    factory = harness.peers_factory(args.backend)
    selected = args.select
    results = harness.run_all(probes, factory,
                              (lambda case: selected in case.id) if selected else lambda case: True,
                              args.host_command)
    print(harness.table(results))
    if args.json:
        import json  # only here: kept off `capsock run`'s start

        args.json.write_text(json.dumps(harness.to_json(results, args.backend), indent=2) + "\n")
    if args.junit:
        args.junit.write_text(harness.to_junit(results, args.backend))
    return 0 if all(result.passed for result in results) else 1


def run_wasi_conformance(args: argparse.Namespace) -> int:
    """`capsock conformance --wasi-sockets`: the wasi:sockets section on
    this capsock (a backend) or on a host command."""
    from .conformance.wasi import harness  # imports dnspython; only this command needs it
    from .conformance.wasi.build import build_probe
    from .runtime.cache import default_cache_dir
    from .toolchain import BuildError

    component: Path | None = args.component
    if component is None:
        try:
            component = build_probe(args.cache_dir or default_cache_dir(), None, lambda text: print(
                f"capsock conformance: {text}", file=sys.stderr, flush=True))
        except BuildError as error:
            print(f"capsock: error: building the wasi:sockets probe: {error}\n"
                  "  (or pass --component PROBE.wasm)", file=sys.stderr)
            return 2
    if not component.is_file():
        print(f"capsock: error: no wasi:sockets probe at {component}", file=sys.stderr)
        return 2
    row: harness.HostRow
    if args.host_command:
        template = args.host_command.replace("{flags}", "{switches}").replace("{args}", "{plan}")
        row = harness.CommandRow("host-command", template, harness.capsock_flags,
                                 takes_dns=True)
    else:
        row = harness.CapsockRow(args.backend)
    selected = args.select
    table = harness.run_rows([row], args.backend, component,
                             (lambda case: selected in case.id) if selected else lambda case: True)
    print(harness.side_by_side(table))
    if args.json:
        import json  # only here: kept off `capsock run`'s start

        args.json.write_text(json.dumps(harness.to_json(table), indent=2) + "\n")
    return 0 if all(o.verdict != "fail" for o in table[row.name]) else 1


def _build_probe(cache_dir: Path | None, core: bool) -> Path | None:
    """The conformance probe shipped with capsock, built (or found in the
    build cache) with the toolchain for the core world (`core`) or with the
    fast-io extension; None, with the reason on stderr, if not."""
    from . import conformance, toolchain
    from .runtime.cache import default_cache_dir

    probe = Path(conformance.__file__).parent / "probe" / "app.py"
    if not probe.is_file():
        print(f"capsock: error: no conformance probe at {probe}; pass --component",
              file=sys.stderr)
        return None
    cache = cache_dir or default_cache_dir()
    output = cache / "conformance" / ("probe.wasm" if core else "probe-fast-io.wasm")
    try:
        toolchain.build_script(probe, output, cache, lambda text: print(
            f"capsock conformance: building the probe: {text}", file=sys.stderr, flush=True),
            world=toolchain.CORE_APP_WORLD if core else toolchain.APP_WORLD)
    except toolchain.BuildError as error:
        print(f"capsock: error: building the conformance probe ({probe}): {error}\n"
              "  (or pass --component PROBE.wasm)", file=sys.stderr)
        return None
    return output


def run_build(args: argparse.Namespace) -> int:
    """`capsock build`: progress on stderr (warnings even with -q), exit 1 on
    a failed build; then the compile step, as `capsock compile` does it."""
    from . import toolchain
    from .runtime.cache import default_cache_dir

    script: Path = args.script
    output: Path = args.output or script.with_suffix(".wasm")
    cache_dir: Path = args.cache_dir or default_cache_dir()

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"capsock build: {text}", file=sys.stderr, flush=True)

    def warn(text: str) -> None:
        print(f"capsock build: {text}", file=sys.stderr, flush=True)

    progress(f"{script} -> {output}")
    try:
        toolchain.build_script(script, output, cache_dir, progress, force=args.force,
                               search=args.search, use_environment=not args.no_environment,
                               strict=args.strict, warn=warn,
                               requirements=args.requirements,
                               with_packages=args.with_packages,
                               include=args.include)
    except toolchain.BuildError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 1
    progress(f"wrote {output}")
    if args.no_compile:
        return 0
    return 0 if _compile_one(output, cache_dir, progress) else 1


def _compile_one(component: Path, cache_dir: Path, progress: Callable[[str], None],
                 engine: Engine | None = None) -> bool:
    """Compile ``component`` into the compilation cache with the engine
    `capsock run` makes (same cache key), reporting like the build step: a
    start line, elapsed time every 5 s, the time taken. A cached component
    takes milliseconds; a cold compile ~10 s. False, said on stderr, for a
    missing or broken component."""
    import time

    from .runtime.cache import load_component
    from .runtime.engine import new_engine

    if not component.is_file():
        print(f"capsock: error: no such component: {component}", file=sys.stderr)
        return False
    started = time.monotonic()
    progress(f"compiling {component} (cache {cache_dir}) ...")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(5.0):
            progress(f"  ... {time.monotonic() - started:.0f}s")

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        load_component(engine or new_engine(), component, cache_dir)
    except Exception as error:  # a broken component file
        print(f"capsock: error: {component}: {error}", file=sys.stderr)
        return False
    finally:
        stop.set()
        ticker.join()
    progress(f"compiled {component} in {time.monotonic() - started:.1f}s")
    return True


def run_compile(args: argparse.Namespace) -> int:
    """`capsock compile`: fill the compilation cache, as `capsock run` would."""
    from .runtime.cache import default_cache_dir
    from .runtime.engine import new_engine

    cache_dir: Path = args.cache_dir or default_cache_dir()
    engine = new_engine()  # the engine `capsock run` makes: same cache key

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"capsock compile: {text}", file=sys.stderr, flush=True)

    results = [_compile_one(component, cache_dir, progress, engine)
               for component in args.components]
    return 0 if all(results) else 2


if __name__ == "__main__":
    sys.exit(main())
