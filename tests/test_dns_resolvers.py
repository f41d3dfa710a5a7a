"""The DnsResolver contract, run against FakeResolver and against DnspythonResolver asking a
real DNS server on loopback; and the standard library resolver's limits."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from membership_core.adapters.dns_python import DnspythonResolver
from membership_core.adapters.dns_stdlib import StdlibResolver
from membership_core.errors import ConfigurationError
from membership_core.ports.dns import DnsResolver, LookupFailed, LookupUnsupported
from membership_core.testing.dns import FakeResolver


class DnsServer:
    """A small authoritative DNS server over UDP on 127.0.0.1, answering from a dict.

    ``records`` maps (name, type) to the record texts in zone-file syntax
    (``'"one" "two"'`` for a TXT record of two strings). A name with records
    of other types answers NOERROR with no answer; an unknown name NXDOMAIN;
    a name in ``servfail`` SERVFAIL; a name in ``silent`` nothing at all.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, client = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            answer = self._answer(query)
            if answer is not None:
                self._socket.sendto(answer.to_wire(), client)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, kind) in self.records:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, "IN", kind, self.records[name, kind])
            )
        elif not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._socket.close()


class Zone(Protocol):
    """What the contract needs from each resolver's world: records and failures to set up."""

    resolver: DnsResolver

    def add(self, name: str, record_type: str, *texts: str) -> None:
        """Create records; TXT texts are zone-file text (quoted strings)."""

    def servfail(self, name: str) -> None:
        """Make the server fail for ``name``."""

    def silence(self, name: str) -> None:
        """Make the server never answer for ``name``."""


class FakeZone:
    def __init__(self) -> None:
        self.resolver = FakeResolver()
        self.fake = self.resolver

    def add(self, name: str, record_type: str, *texts: str) -> None:
        if record_type == "TXT":
            # Zone-file text to the joined strings the port returns.
            values = tuple("".join(text.split('"')[1::2]) for text in texts)
        else:
            values = texts
        self.fake.set(name, record_type, *self.fake.lookup(name, record_type), *values)

    def servfail(self, name: str) -> None:
        for kind in ("CNAME", "TXT"):
            self.fake.fail(name, kind, "SERVFAIL")

    def silence(self, name: str) -> None:
        for kind in ("CNAME", "TXT"):
            self.fake.fail(name, kind, "timed out")


class RealZone:
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.resolver = DnspythonResolver(["127.0.0.1"], port=server.port, timeout=0.5)

    def add(self, name: str, record_type: str, *texts: str) -> None:
        self.server.records.setdefault((name, record_type), []).extend(texts)

    def servfail(self, name: str) -> None:
        self.server.servfail.add(name)

    def silence(self, name: str) -> None:
        self.server.silent.add(name)


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["fake", "dnspython"])
def zone(request: pytest.FixtureRequest) -> Zone:
    if request.param == "fake":
        return FakeZone()
    return RealZone(request.getfixturevalue("dns_server"))


# -- the contract -----------------------------------------------------------------


def test_cname_found(zone: Zone) -> None:
    zone.add("learn.example.com", "CNAME", "portals.example.net.")
    assert zone.resolver.lookup("learn.example.com", "CNAME") == ("portals.example.net",)


def test_names_are_case_and_trailing_dot_insensitive(zone: Zone) -> None:
    zone.add("learn.example.com", "CNAME", "portals.example.net.")
    assert zone.resolver.lookup("Learn.EXAMPLE.com.", "CNAME") == ("portals.example.net",)


def test_a_name_without_a_cname_gives_nothing(zone: Zone) -> None:
    zone.add("learn.example.com", "TXT", '"hello"')
    assert zone.resolver.lookup("learn.example.com", "CNAME") == ()


def test_a_name_that_does_not_exist_gives_nothing(zone: Zone) -> None:
    zone.add("learn.example.com", "CNAME", "portals.example.net.")
    assert zone.resolver.lookup("nothing.example.com", "CNAME") == ()
    assert zone.resolver.lookup("nothing.example.com", "TXT") == ()


def test_one_txt_record(zone: Zone) -> None:
    zone.add("_membership-verification.learn.example.com", "TXT", '"membership-verification=t"')
    found = zone.resolver.lookup("_membership-verification.learn.example.com", "TXT")
    assert found == ("membership-verification=t",)


def test_a_txt_record_of_several_strings_is_joined(zone: Zone) -> None:
    zone.add("learn.example.com", "TXT", '"membership-" "verification=" "t"')
    assert zone.resolver.lookup("learn.example.com", "TXT") == ("membership-verification=t",)


def test_several_txt_records(zone: Zone) -> None:
    zone.add("learn.example.com", "TXT", '"v=spf1 -all"', '"membership-verification=t"')
    found = zone.resolver.lookup("learn.example.com", "TXT")
    assert sorted(found) == ["membership-verification=t", "v=spf1 -all"]


def test_a_long_txt_record_over_255_bytes(zone: Zone) -> None:
    token = "x" * 300
    zone.add("learn.example.com", "TXT", f'"{token[:255]}" "{token[255:]}"')
    assert zone.resolver.lookup("learn.example.com", "TXT") == (token,)


def test_servfail_is_a_failed_lookup(zone: Zone) -> None:
    zone.add("learn.example.com", "CNAME", "portals.example.net.")
    zone.servfail("learn.example.com")
    with pytest.raises(LookupFailed):
        zone.resolver.lookup("learn.example.com", "CNAME")
    with pytest.raises(LookupFailed):
        zone.resolver.lookup("learn.example.com", "TXT")


def test_no_answer_in_time_is_a_failed_lookup(zone: Zone) -> None:
    zone.add("learn.example.com", "CNAME", "portals.example.net.")
    zone.silence("learn.example.com")
    with pytest.raises(LookupFailed):
        zone.resolver.lookup("learn.example.com", "CNAME")


@pytest.mark.parametrize("record_type", ["A", "cname", "MX", ""])
def test_other_record_types_are_a_programming_error(zone: Zone, record_type: str) -> None:
    with pytest.raises(ValueError, match="CNAME or TXT"):
        zone.resolver.lookup("learn.example.com", record_type)


# -- DnspythonResolver and the real server ---------------------------------------------


def test_only_the_direct_cname_is_returned(dns_server: DnsServer) -> None:
    dns_server.records["learn.example.com", "CNAME"] = ["portals.example.net."]
    dns_server.records["portals.example.net", "CNAME"] = ["lb.example.org."]
    resolver = DnspythonResolver(["127.0.0.1"], port=dns_server.port, timeout=1)
    assert resolver.lookup("learn.example.com", "CNAME") == ("portals.example.net",)


def test_every_lookup_asks_the_server_again(dns_server: DnsServer) -> None:
    resolver = DnspythonResolver(["127.0.0.1"], port=dns_server.port, timeout=1)
    assert resolver.lookup("learn.example.com", "CNAME") == ()
    dns_server.records["learn.example.com", "CNAME"] = ["portals.example.net."]
    assert resolver.lookup("learn.example.com", "CNAME") == ("portals.example.net",)
    assert dns_server.queries == [("learn.example.com", "CNAME")] * 2


def test_a_silent_server_fails_within_the_timeout(dns_server: DnsServer) -> None:
    dns_server.silent.add("learn.example.com")
    resolver = DnspythonResolver(["127.0.0.1"], port=dns_server.port, timeout=0.3)
    with pytest.raises(LookupFailed, match="timed out"):
        resolver.lookup("learn.example.com", "TXT")


def test_an_unreachable_server_is_a_failed_lookup(dns_server: DnsServer) -> None:
    port = dns_server.port
    dns_server.stop()  # nothing listens there any more
    resolver = DnspythonResolver(["127.0.0.1"], port=port, timeout=0.3)
    with pytest.raises(LookupFailed):
        resolver.lookup("learn.example.com", "CNAME")


@pytest.mark.parametrize(
    ("nameservers", "timeout", "phrase"),
    [
        (["not an address"], 1.0, "DnspythonResolver"),
        ("127.0.0.1", 1.0, "not one string"),
        (["127.0.0.1"], 0, "timeout must be positive"),
    ],
)
def test_bad_configuration_is_refused(nameservers: Any, timeout: float, phrase: str) -> None:
    with pytest.raises(ConfigurationError, match=phrase):
        DnspythonResolver(nameservers, timeout=timeout)


def test_without_dnspython_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dns", None)
    with pytest.raises(ConfigurationError, match=r"install membership_core\[dns\]"):
        DnspythonResolver(["127.0.0.1"])


# -- FakeResolver ------------------------------------------------------------------------


def test_the_fake_records_lookups_and_clears() -> None:
    fake = FakeResolver()
    fake.set("learn.example.com", "TXT", "a", "b")
    fake.set("learn.example.com", "CNAME", "portals.example.net")
    fake.fail("learn.example.com", "TXT")
    with pytest.raises(LookupFailed, match="did not answer"):
        fake.lookup("LEARN.example.com.", "TXT")
    fake.clear("learn.example.com", "TXT")
    assert fake.lookup("learn.example.com", "TXT") == ()
    assert fake.lookup("learn.example.com", "CNAME") == ("portals.example.net",)
    fake.clear("learn.example.com")
    assert fake.lookup("learn.example.com", "CNAME") == ()
    assert fake.lookups == [("learn.example.com", "TXT")] * 2 + [("learn.example.com", "CNAME")] * 2


def test_the_fake_can_play_a_resolver_that_cannot_read_txt() -> None:
    fake = FakeResolver()
    fake.set("learn.example.com", "TXT", "a")
    fake.unsupported("TXT")
    with pytest.raises(LookupUnsupported, match="FakeResolver"):
        fake.lookup("learn.example.com", "TXT")
    fake.unsupported("CNAME", "install something")
    with pytest.raises(LookupUnsupported, match="install something"):
        fake.lookup("learn.example.com", "CNAME")


def test_the_fake_is_safe_from_many_threads() -> None:
    fake = FakeResolver()
    fake.set("learn.example.com", "TXT", "a")

    def look() -> None:
        for _ in range(200):
            assert fake.lookup("learn.example.com", "TXT") == ("a",)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.lookups) == 1600


# -- StdlibResolver ------------------------------------------------------------------------


def test_stdlib_resolver_reads_localhost_without_error() -> None:
    found = StdlibResolver().lookup("localhost", "CNAME")
    assert isinstance(found, tuple)
    assert all(isinstance(value, str) and value != "localhost" for value in found)


def test_stdlib_resolver_cannot_read_txt_and_names_the_extra() -> None:
    with pytest.raises(LookupUnsupported, match=r"install membership_core\[dns\]"):
        StdlibResolver().lookup("localhost", "TXT")


def test_stdlib_resolver_gives_nothing_for_a_name_that_cannot_exist() -> None:
    assert StdlibResolver().lookup("nothing.invalid", "CNAME") == ()


def test_stdlib_resolver_refuses_other_record_types() -> None:
    with pytest.raises(ValueError, match="CNAME or TXT"):
        StdlibResolver().lookup("localhost", "A")
