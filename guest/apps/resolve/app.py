"""Resolve names through the resolver capability.

    resolve [--ipv4|--ipv6] [--restrict RULE]... NAME...

Prints one line per name: ``NAME ADDR ADDR...`` or ``NAME error: CODE``
(``access-denied`` when the policy forbids the name, ``name-unresolvable``
when DNS has no such name, ...). ``--restrict`` narrows the resolver first
(``allow-resolve=*.example.com``, ``deny-resolve=x.example.com``). Exits 1
if any name failed.
"""

from __future__ import annotations

import sys

import capsock_guest as cg

USAGE = "usage: resolve [--ipv4|--ipv6] [--restrict RULE]... NAME..."


def main(argv: list[str]) -> int:
    family: str | None = None
    rules: list[str] = []
    names: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("--ipv4", "--ipv6"):
            family = arg[2:]
        elif arg == "--restrict" and rest:
            rules.append(rest.pop(0))
        elif arg.startswith("--") and arg != "--":
            print(USAGE, file=sys.stderr)
            return 2
        else:
            names.append(arg)
    if not names:
        print(USAGE, file=sys.stderr)
        return 2

    try:
        resolver = cg.resolver()
        if rules:
            resolver = resolver.restrict(rules)
    except cg.NetError as e:
        for name in names:
            print(f"{name} error: {e.code}", flush=True)
        return 1
    failed = False
    for name in names:
        try:
            addresses = resolver.resolve(name, family)
        except cg.NetError as e:
            print(f"{name} error: {e.code}", flush=True)
            failed = True
            continue
        print(" ".join([name, *addresses]), flush=True)
    return 1 if failed else 0


Run = cg.run_main(main)
