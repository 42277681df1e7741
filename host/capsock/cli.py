"""`capsock`: run WebAssembly components with capability-based networking."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .policy import Policy, PolicyError
from .runtime import Host, RunError, TcpListenSpec

RULES_HELP = """\
policy (deny by default; a deny rule always wins over an allow rule):
  Address rules are PROTO://HOST:PORT with PROTO tcp (udp arrives later),
  HOST an IPv4 address, an [IPv6] address in brackets, a CIDR range
  (10.0.0.0/8, [fd00::/8]), a name (localhost, example.com) or *, and
  PORT a number, a range LO-HI, or *.

  --allow-outbound=tcp://127.0.0.1:80   connect to 127.0.0.1 port 80
  --allow-outbound=tcp://*:443          connect to any host on port 443
  --allow-inbound=tcp://127.0.0.1:*     bind/listen on 127.0.0.1, any port
  --deny-outbound=tcp://10.0.0.0/8:*    never connect into 10.0.0.0/8
  --addr-pool=127.0.0.0/8,::1/128       WAMR syntax: CIDR ranges, any port,
                                        both directions (ADDRESS/MASK only)

  A denied operation returns access-denied to the guest and makes no
  system call toward the target. A malformed rule stops capsock before
  the guest starts, with a message naming the rule.

examples:
  capsock run --tcplisten 127.0.0.1:8080 build/echo.wasm
  capsock run --allow-outbound=tcp://127.0.0.1:8080 build/client.wasm 127.0.0.1:8080 hi
"""


def _package_version() -> str:
    try:
        return version("capsock")
    except PackageNotFoundError:
        return "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capsock",
        description="Run WebAssembly components with capability-based, "
                    "deny-by-default networking (capsock:net@0.1.0).",
        epilog="Run `capsock run --help` for the policy flags.",
    )
    parser.add_argument("--version", action="version", version=f"capsock {_package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
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
    return parser


def add_instance_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that configure a guest instance (shared by run and serve)."""
    add_policy_flags(parser)
    group = parser.add_argument_group("pre-opened sockets and runtime")
    group.add_argument("--tcplisten", action="append", default=[], metavar="HOST:PORT",
                       help="pre-open a listening TCP socket for the guest (repeatable); "
                            "port 0 picks a free port. The guest gets it from "
                            "preopened-sockets(); it needs no --allow-inbound rule")
    group.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                       help="where compiled components are cached "
                            "(default: $CAPSOCK_CACHE_DIR or ~/.cache/capsock)")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="log every denied operation to stderr")


class ConfigError(Exception):
    """A flag's value is wrong; the message names the flag."""


def host_from_args(args: argparse.Namespace) -> Host:
    """Build the Host the instance flags describe (no sockets opened yet)."""
    try:
        policy = policy_from_args(args)
    except PolicyError as error:
        raise ConfigError(str(error)) from None
    listens = []
    for text in args.tcplisten:
        try:
            listens.append(TcpListenSpec.parse(text))
        except ValueError as error:
            raise ConfigError(f"invalid --tcplisten: {error}") from None
    return Host(policy=policy, tcp_listen=listens, cache_dir=args.cache_dir)


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policy")
    for flag, text in (
        ("allow-outbound", "allow connecting to PROTO://HOST:PORT"),
        ("allow-inbound", "allow binding/listening on PROTO://HOST:PORT"),
        ("deny-outbound", "deny connecting to PROTO://HOST:PORT (wins over allows)"),
        ("deny-inbound", "deny binding/listening on PROTO://HOST:PORT (wins over allows)"),
        ("allow-resolve", "allow resolving NAME, *.NAME or * (resolution arrives later)"),
        ("deny-resolve", "deny resolving NAME, *.NAME or *"),
        ("addr-pool", "WAMR-style comma-separated ADDRESS/MASK list: any port, "
                      "both directions"),
    ):
        group.add_argument(f"--{flag}", action="append", default=[], metavar="RULE",
                           help=f"{text} (repeatable)")


def policy_from_args(args: argparse.Namespace) -> Policy:
    return Policy.from_flags(
        allow_outbound=args.allow_outbound, allow_inbound=args.allow_inbound,
        deny_outbound=args.deny_outbound, deny_inbound=args.deny_inbound,
        allow_resolve=args.allow_resolve, deny_resolve=args.deny_resolve,
        addr_pool=args.addr_pool,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
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
        return host.run(args.component, guest_args)
    except RunError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a broken component file, a link error
        print(f"capsock: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
