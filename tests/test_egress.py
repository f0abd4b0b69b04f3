"""The egress guard (services/egress.py) against research/peers.md §4.2: every special address and every
spelling of one is refused, names are resolved once and the connection pinned to the checked address,
redirects are refused, and time and size are bounded. Traffic goes only to 127.0.0.1."""

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oneapi.config import load
from oneapi.services import egress

# ---------------------------------------------------------------------------------------------- helpers


class LocalServer:
    """An HTTP(S) server on 127.0.0.1 whose answer a test sets: (status, headers, body[, delay])."""

    def __init__(self, tls_context=None):
        self.requests = []
        self.answer = (200, {"Content-Type": "application/json"}, b'{"ok": true}')
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                        "body": body})
                if server.delay:
                    time.sleep(server.delay)
                status, headers, payload = server.answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    if headers.get("Transfer-Encoding") == "chunked":
                        for start in range(0, len(payload), 65536):
                            piece = payload[start:start + 65536]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_port
        self.url = f"{'https' if tls_context else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server():
    servers = []

    def start(**kwargs):
        server = LocalServer(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def make_certificate(tmp_path, names):
    """A CA and a server certificate for `names` (DNS names or IP strings): (ca_file, cert_file, key_file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "one-api test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(ca_file), str(cert_file), str(key_file)


def server_tls(cert_file, key_file):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


class FakeDNS:
    """Stands in for getaddrinfo: names map to address lists; every lookup is counted."""

    def __init__(self, table):
        self.table = table
        self.lookups = []

    def __call__(self, host, port, *args, **kwargs):
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.table[host]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in answers]


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDNS({})
    monkeypatch.setattr(egress, "_getaddrinfo", fake)
    return fake


# ---------------------------------------------------------------------------------------------- addresses

REFUSED = [
    "http://127.0.0.1/", "http://127.0.0.1:8080/x", "http://127.1/", "http://127.255.255.254/",
    "http://0.0.0.0/", "http://0/", "http://[::]/", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/",
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f000001/", "http://0x7f.0.0.1/", "http://0x7f.1/",
    "http://017700000001/", "http://127.0.0.1./",
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xa9fea9fe/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/", "http://100.127.255.254/",
    "http://198.18.0.1/", "http://198.19.255.1/", "http://192.0.0.8/", "http://192.0.2.1/", "http://203.0.113.9/",
    "http://224.0.0.1/", "http://239.255.255.250/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fe80::1]/", "http://[fec0::1]/", "http://[ff02::1]/",
    "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::1]/",
    "http://[2001:db8::1]/", "http://[2001::1]/", "https://[::1]:443/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_special_addresses_are_refused_in_every_spelling(url, dns):
    with pytest.raises(egress.EgressRefused):
        egress.check(url, allow_private=False)
    assert dns.lookups == []  # an address is never sent to DNS


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert not egress.blocked(address)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://example.com/",
                                 "http://user:pass@example.com/", "http://example.com@127.0.0.1/",
                                 "http:///path", "http://exa mple.com/", "http://example.com\r\nX: y/",
                                 "http://[::1/", "http://example.com:99999/", "//example.com/", "example.com",
                                 "http://1.2.3.4.5/"])
def test_malformed_urls_are_refused(url, dns):
    with pytest.raises(egress.EgressRefused):
        egress.check(url, allow_private=False)


def test_a_name_resolving_to_a_private_address_is_refused(dns):
    dns.table.update({"internal.example": ["10.1.2.3"], "mixed.example": ["93.184.215.14", "192.168.0.10"],
                      "v6.example": ["fd00::5"], "mapped.example": ["::ffff:10.0.0.7"],
                      "public.example": ["93.184.215.14"]})
    for name in ("internal.example", "mixed.example", "v6.example", "mapped.example", "localhost.example"):
        with pytest.raises(egress.EgressError):
            egress.check(f"https://{name}/hook", allow_private=False)
    target = egress.check("https://public.example/hook?x=1", allow_private=False)
    assert (target.ip, target.hostname, target.port, target.path, target.host_header) == (
        "93.184.215.14", "public.example", 443, "/hook?x=1", "public.example")


def test_unknown_names_fail_without_a_request(dns):
    with pytest.raises(egress.EgressFailed):
        egress.check("http://nowhere.invalid/", allow_private=False)


# ---------------------------------------------------------------------------------------------- requests


def test_the_connection_goes_to_the_address_checked_once(local_server, dns):
    """DNS rebinding: the name is looked up once; the request reaches the pinned address with its Host."""
    server = local_server()
    dns.table["hooks.example"] = ["127.0.0.1"]
    answer = egress.post_json(f"http://hooks.example:{server.port}/in?a=b", {"hello": "world"}, allow_private=True)
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert dns.lookups == ["hooks.example"]
    (seen,) = server.requests
    assert seen["path"] == "/in?a=b" and seen["headers"]["Host"] == f"hooks.example:{server.port}"
    assert json.loads(seen["body"]) == {"hello": "world"}
    assert seen["headers"]["Content-Type"] == "application/json"


def test_a_redirect_is_refused_and_not_followed(local_server):
    target = local_server()
    redirector = local_server()
    for status in (301, 302, 303, 307, 308):
        redirector.answer = (status, {"Location": f"http://localhost:{target.port}/admin"}, b"")
        with pytest.raises(egress.EgressRefused, match="redirect"):
            egress.get(redirector.url + "/start", allow_private=True)
    assert target.requests == []


def test_answers_are_capped_in_size(local_server):
    server = local_server()
    big = b"x" * (256 * 1024)
    for headers in ({}, {"Transfer-Encoding": "chunked"}):  # with and without a Content-Length
        server.answer = (200, headers, big)
        with pytest.raises(egress.EgressFailed, match="larger"):
            egress.get(server.url, allow_private=True, max_bytes=64 * 1024)
        assert egress.get(server.url, allow_private=True, max_bytes=len(big)).body == big


def test_a_slow_answer_times_out(local_server):
    server = local_server()
    server.delay = 2.0
    started = time.monotonic()
    with pytest.raises(egress.EgressFailed, match="timed out"):
        egress.get(server.url, allow_private=True, read_timeout=0.3)
    assert time.monotonic() - started < 1.5


def test_a_closed_port_fails_cleanly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(egress.EgressFailed):
        egress.get(f"http://127.0.0.1:{port}/", allow_private=True, connect_timeout=1)


def test_https_checks_the_certificate_against_the_name_not_the_pinned_address(local_server, dns, tmp_path,
                                                                               monkeypatch):
    ca_file, cert_file, key_file = make_certificate(tmp_path, ["hooks.example"])
    server = local_server(tls_context=server_tls(cert_file, key_file))
    dns.table.update({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    url = f"https://hooks.example:{server.port}/in"
    with pytest.raises(egress.EgressFailed):  # the test CA is not trusted by default
        egress.get(url, allow_private=True)
    monkeypatch.setattr(egress, "tls_context", lambda: ssl.create_default_context(cafile=ca_file))
    assert egress.get(url, allow_private=True).status == 200
    assert server.requests[-1]["headers"]["Host"] == f"hooks.example:{server.port}"
    with pytest.raises(egress.EgressFailed):  # a certificate for another name
        egress.get(f"https://other.example:{server.port}/in", allow_private=True)


def test_the_switch_comes_from_the_environment_and_the_app(app, local_server):
    assert load({})["EGRESS_ALLOW_PRIVATE"] is False
    assert load({"EGRESS_ALLOW_PRIVATE": "true"})["EGRESS_ALLOW_PRIVATE"] is True
    server = local_server()
    with app.app_context():
        assert app.config["EGRESS_ALLOW_PRIVATE"] is False
        with pytest.raises(egress.EgressRefused):
            egress.get(server.url)
        app.config["EGRESS_ALLOW_PRIVATE"] = True
        assert egress.get(server.url).status == 200
    with pytest.raises(egress.EgressRefused):  # outside an app: never private
        egress.get(server.url)
