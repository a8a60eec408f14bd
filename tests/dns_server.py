"""A tiny authoritative DNS server on 127.0.0.1 (UDP) for reverse-DNS tests.

    with DnsServer(ptr={"192.0.2.10": "laptop.example.net"},
                   forward={"laptop.example.net": ["192.0.2.10"]},
                   silent={"192.0.2.99"}) as dns_server:
        resolver = dns_server.resolver()

``silent`` addresses get no answer at all (a resolver timeout); unknown names get NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading

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
        ptr: dict[str, str] | None = None,
        forward: dict[str, list[str]] | None = None,
        silent: set[str] | None = None,
    ) -> None:
        self.ptr = ptr or {}
        self.forward = {name.rstrip(".").lower(): ips for name, ips in (forward or {}).items()}
        self.silent = silent or set()
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
            reply = self._answer(dns.message.from_wire(data))
            if reply is not None:
                self.sock.sendto(reply.to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        self.queries.append(f"{dns.rdatatype.to_text(rdtype)} {name}")
        response = dns.message.make_response(query)
        records: list[str] = []
        if rdtype == dns.rdatatype.PTR:
            address = dns.reversename.to_address(name)
            if address in self.silent:
                return None
            if address in self.ptr:
                records = [self.ptr[address].rstrip(".") + "."]
        elif rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
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
