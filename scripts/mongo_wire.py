"""The MongoDB wire protocol, just enough to tell whether a server answers: ``{ping: 1}``.

Stdlib only (the scripts run before the venv has PyMongo). Probes loopback addresses only.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
import urllib.parse
from pathlib import Path

from server_procs import ServerError, log_tail, pid_alive, stop_pid

HOST = "127.0.0.1"

# One OP_MSG {ping: 1} with a hand-rolled minimal BSON codec.
_OP_MSG = 2013


def _bson_cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def _bson_encode(doc: dict[str, int | str]) -> bytes:
    body = b""
    for key, value in doc.items():
        if isinstance(value, int):
            body += b"\x10" + _bson_cstring(key) + struct.pack("<i", value)
        else:
            raw = value.encode() + b"\x00"
            body += b"\x02" + _bson_cstring(key) + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _bson_value_size(etype: int, data: bytes, pos: int) -> int:
    fixed = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8}
    fixed.update({0x13: 16, 0x7F: 0, 0xFF: 0})
    if etype in fixed:
        return fixed[etype]
    length: int = struct.unpack_from("<i", data, pos)[0]
    if etype in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol
        return 4 + length
    if etype in (0x03, 0x04, 0x0F):  # document, array, code with scope
        return length
    if etype == 0x05:  # binary: length, subtype, bytes
        return 5 + length
    if etype == 0x0C:  # DBPointer
        return 4 + length + 12
    if etype == 0x0B:  # regex: two cstrings
        end = data.index(b"\x00", data.index(b"\x00", pos) + 1)
        return end + 1 - pos
    raise ValueError(f"unknown BSON type {etype:#x}")


def _bson_ok(data: bytes) -> bool:
    """True when the top-level field ``ok`` of a BSON document equals 1."""
    (length,) = struct.unpack_from("<i", data, 0)
    pos, end = 4, length - 1
    while pos < end:
        etype = data[pos]
        name_end = data.index(b"\x00", pos + 1)
        name, pos = data[pos + 1 : name_end], name_end + 1
        if name == b"ok":
            if etype == 0x01:
                return bool(struct.unpack_from("<d", data, pos)[0] == 1.0)
            if etype == 0x10:
                return bool(struct.unpack_from("<i", data, pos)[0] == 1)
            if etype == 0x12:
                return bool(struct.unpack_from("<q", data, pos)[0] == 1)
            if etype == 0x08:
                return data[pos] == 1
            return False
        pos += _bson_value_size(etype, data, pos)
    return False


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send ``{ping: 1}`` as OP_MSG to a loopback host; True if it answers ``ok: 1``."""
    if not is_loopback(host):
        raise ServerError(f"refusing to probe non-loopback host {host!r}")
    body = struct.pack("<I", 0) + b"\x00" + _bson_encode({"ping": 1, "$db": "admin"})
    request = struct.pack("<iiii", 16 + len(body), 1, 0, _OP_MSG) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            length, _, _, opcode = struct.unpack("<iiii", _recv_exactly(sock, 16))
            payload = _recv_exactly(sock, length - 16)
    except (OSError, struct.error):
        return False
    if opcode != _OP_MSG or len(payload) < 5 or payload[4] != 0:
        return False
    try:
        return _bson_ok(payload[5:])
    except (ValueError, IndexError, struct.error):
        return False


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host_port(url: str) -> tuple[str, int]:
    """The first host and port of a ``mongodb://`` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mongodb":
        raise ValueError(f"not a mongodb:// URL: {url!r}")
    first = parts.netloc.rsplit("@", 1)[-1].split(",")[0]
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = first.partition(":")
    if not host:
        raise ValueError(f"no host in {url!r}")
    return host, int(port_text or 27017)


def url_answers(url: str, timeout: float = 2.0) -> bool:
    host, port = url_host_port(url)
    return ping(host, port, timeout)


def make_url(port: int) -> str:
    return f"mongodb://{HOST}:{port}/"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until_answers(pid: int, port: int, log_path: Path, timeout: float = 30.0) -> None:
    """Wait until the server ``pid`` answers a ping on ``port``; stop it and raise if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(HOST, port, timeout=1.0):
            return
        if not pid_alive(pid):
            raise ServerError(
                f"server exited during startup; log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)
    stop_pid(pid)
    raise ServerError(
        f"server did not answer on {HOST}:{port} within {timeout:.0f}s; "
        f"log {log_path}:\n{log_tail(log_path)}"
    )
