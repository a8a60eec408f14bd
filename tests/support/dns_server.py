"""A tiny authoritative DNS server on 127.0.0.1 (UDP) for reverse-DNS tests.

    with DnsServer(ptr={"192.0.2.10": "laptop.example.net"},
                   forward={"laptop.example.net": ["192.0.2.10"]},
                   silent={"192.0.2.99"}) as dns_server:
        resolver = dns_server.resolver()

``silent`` addresses or networks (``"198.51.100.0/24"``) get no PTR answer at all (a
resolver timeout); ``silent_zones`` are name suffixes whose forward queries never get one;
``delay`` answers an address's PTR query that many seconds late (other queries go on);
``servfail`` addresses get SERVFAIL. A ``ptr`` value may be a list (a PTR set of many names).
Unknown names get NXDOMAIN. ``queries`` lists every question asked (``"PTR 10.2.0.192…"``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Mapping

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset


class DnsServer:
    def __init__(
        self,
        ptr: Mapping[str, str | list[str]] | None = None,
        forward: dict[str, list[str]] | None = None,
        silent: set[str] | None = None,
        *,
        silent_zones: set[str] | None = None,
        delay: dict[str, float] | None = None,
        servfail: set[str] | None = None,
    ) -> None:
        self.ptr = {a: [n] if isinstance(n, str) else n for a, n in (ptr or {}).items()}
        self.forward = {name.rstrip(".").lower(): ips for name, ips in (forward or {}).items()}
        self.silent = [ipaddress.ip_network(net, strict=False) for net in silent or ()]
        self.silent_zones = {zone.strip(".").lower() for zone in silent_zones or ()}
        self.delay = delay or {}
        self.servfail = servfail or set()
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # so the thread sees _stop soon after __exit__
        self._stop = threading.Event()
        self.port: int = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        return resolver

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = self._answer(query)
            if reply is None:
                continue
            late = self._late(query)
            if late:
                threading.Timer(late, self._send, (reply, peer)).start()
            else:
                self._send(reply, peer)

    def _send(self, reply: dns.message.Message, peer: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):  # closed by __exit__ meanwhile
            self.sock.sendto(reply.to_wire(), peer)

    def _late(self, query: dns.message.Message) -> float:
        question = query.question[0]
        if question.rdtype != dns.rdatatype.PTR:
            return 0.0
        return self.delay.get(dns.reversename.to_address(question.name), 0.0)

    def silent_for(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.silent)

    def _silent_name(self, name: dns.name.Name) -> bool:
        text = name.to_text(omit_final_dot=True).lower()
        return any(text == zone or text.endswith("." + zone) for zone in self.silent_zones)

    def asked(self, rdtype: str) -> list[str]:
        """The names asked for with this record type, in order (repeats included)."""
        return [q.split(" ", 1)[1] for q in list(self.queries) if q.split(" ", 1)[0] == rdtype]

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        self.queries.append(f"{dns.rdatatype.to_text(rdtype)} {name}")
        response = dns.message.make_response(query)
        records: list[str] = []
        if rdtype == dns.rdatatype.PTR:
            address = dns.reversename.to_address(name)
            if self.silent_for(address):
                return None
            if address in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            records = [n.rstrip(".") + "." for n in self.ptr.get(address, [])]
        elif rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if self._silent_name(name):
                return None
            family = 4 if rdtype == dns.rdatatype.A else 6
            records = [
                ip
                for ip in self.forward.get(name.to_text(omit_final_dot=True).lower(), [])
                if (":" in ip) == (family == 6)
            ]
        if records:
            response.answer.append(
                dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, rdtype, records)
            )
        elif rdtype == dns.rdatatype.PTR or not self._known(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _known(self, name: dns.name.Name) -> bool:
        return name.to_text(omit_final_dot=True).lower() in self.forward

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
