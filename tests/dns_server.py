"""The loopback DNS test server lives in the package (the conformance
harness uses it too); tests import it from here."""

from capsock.conformance.dns_server import GARBAGE, SERVFAIL, SILENT, DnsServer

__all__ = ["GARBAGE", "SERVFAIL", "SILENT", "DnsServer"]
