"""Spin's ``allowed_outbound_hosts`` entries as capsock outbound rules.

An operator moving a component from Spin can paste its manifest's list
into a policy file (``[outbound] allowed_outbound_hosts = [...]``). Spin's
grammar is ``SCHEME://HOST[:PORT][/]`` (a URL authority, no path); each
entry becomes one or two ``--allow-outbound`` rules, or a
:class:`PolicyError` that says why it has no socket-level meaning. The
table (README, "Spin's allowed_outbound_hosts"):

==========================  ==========================================
Spin entry                  capsock rule(s)
==========================  ==========================================
``tcp://H:P``               ``tcp://H:P``
``udp://H:P``               ``udp://H:P``
``http``/``https``/         ``tcp://H:P``, P defaulting to the
``postgres``/``mysql``/     scheme's port: 80, 443, 5432, 3306, 6379,
``redis``/``mqtt``          1883 (``redis://cache`` is
                            ``tcp://cache:6379``)
``*://H:P``                 ``tcp://H:P`` and ``udp://H:P``
host ``*``                  ``*``
host ``*.example.com``      ``*.example.com`` (subdomains only, as Spin)
host ``10.0.0.0/8``         the CIDR (IPv6: ``[fd00::/8]``, or bare)
port ``*``                  ``*``
port ``1000..2000``         ``1000-1999`` (Spin's end is exclusive)
``self``, ``{a,b}`` lists,  error: no socket-level meaning, or not
``{{ template }}``,         supported (write the rule out)
other schemes without a
port, ``insecure:allow-all``
==========================  ==========================================

Pure: text in, rule strings out (parsed again, strictly, by `rules.py`).
"""

from __future__ import annotations

import ipaddress

from .rules import PolicyError, parse_address_rule

__all__ = ["SPIN_DEFAULT_PORTS", "spin_rules"]

#: The schemes Spin knows a port for (its `well_known_port`), all over TCP.
SPIN_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "postgres": 5432,
                                      "mysql": 3306, "redis": 6379, "mqtt": 1883}


def _fail(entry: str, reason: str) -> PolicyError:
    return PolicyError(f"Spin allowed_outbound_hosts entry '{entry}': {reason}")


def spin_rules(entry: str) -> list[str]:
    """The capsock rules one Spin entry means (see the module table)."""
    text = entry.strip()
    if text == "insecure:allow-all":
        raise _fail(entry, "not accepted (Spin refuses it too); write '*://*:*'")
    if "{" in text:
        raise _fail(entry, "templates and {a,b} lists are not supported: write each rule out")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _fail(entry, "no scheme (e.g. 'tcp://' or '*://')")
    scheme = scheme.lower()
    if scheme == "*":
        protocols = ["tcp", "udp"]
    elif scheme == "udp":
        protocols = ["udp"]
    elif scheme == "tcp" or scheme in SPIN_DEFAULT_PORTS:
        protocols = ["tcp"]
    else:
        raise _fail(entry, f"unknown scheme '{scheme}' (known: *, tcp, udp, "
                           f"{', '.join(sorted(SPIN_DEFAULT_PORTS))})")
    rest = rest.removesuffix("/")
    host, port = _split(rest)
    if "/" in port:
        raise _fail(entry, "a path is not allowed")
    if not host:
        raise _fail(entry, "no host")
    if host == "self":
        raise _fail(entry, "'self' (the app itself) has no socket-level meaning: "
                           "allow the address it listens on")
    if port == "":
        default = SPIN_DEFAULT_PORTS.get(scheme)
        if default is None:
            raise _fail(entry, f"no port, and scheme '{scheme}' has no default port")
        port = str(default)
    elif ".." in port:
        low, _, high = port.partition("..")
        if not (low.isdigit() and high.isdigit()) or int(high) <= int(low):
            raise _fail(entry, f"port range '{port}' is empty or not numbers")
        port = f"{int(low)}-{int(high) - 1}"
    rules = [f"{protocol}://{host}:{port}" for protocol in protocols]
    for rule in rules:
        try:
            parse_address_rule(rule)
        except PolicyError as error:
            raise _fail(entry, f"becomes '{rule}', which is not a rule: "
                               f"{str(error).split(': ', 1)[-1]}") from None
    return rules


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return False
    return "/" in text


def _split(rest: str) -> tuple[str, str]:
    """HOST and PORT ("" when absent); an IPv6 host in brackets or a bare
    IPv6 CIDR is put in brackets for capsock's grammar."""
    if rest.startswith("["):
        close = rest.find("]")
        host, after = rest[:close + 1], rest[close + 1:]
        if after.startswith("/"):  # [fd00::]/8:PORT
            prefix, _, port = after[1:].partition(":")
            return f"{host[:-1]}/{prefix}]", port
        return host, after.removeprefix(":")
    if _is_cidr(rest) and ":" in rest:  # bare IPv6 CIDR, no port
        return f"[{rest}]", ""
    host, colon, port = rest.rpartition(":")
    if not colon:
        return rest, ""
    if ":" in host and _is_cidr(host):
        return f"[{host}]", port
    return host, port
