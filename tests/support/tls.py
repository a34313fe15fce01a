"""A test certificate authority made with Debian's `openssl` command: a CA, server certificates
for 127.0.0.1/localhost and client certificates. Keys are written 0600."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr[-2000:]}")


class TestCA:
    """One CA in ``directory``; ``issue`` signs server or client certificates with it."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "logpipe test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cert, self.key = self.dir / "ca.pem", self.dir / "ca.key"
        old = os.umask(0o077)
        try:
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                     "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        finally:
            os.umask(old)
        os.chmod(self.cert, 0o644)

    def issue(self, name: str, client: bool = False) -> CertPair:
        key, csr, cert = (self.dir / f"{name}.key", self.dir / f"{name}.csr",
                          self.dir / f"{name}.pem")
        ext = self.dir / f"{name}.ext"
        usage = "clientAuth" if client else "serverAuth"
        ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       f"extendedKeyUsage={usage}\n"
                       + ("" if client else "subjectAltName=IP:127.0.0.1,DNS:localhost\n"))
        old = os.umask(0o077)
        try:
            _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=self.dir)
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey",
                     str(self.key), "-CAcreateserial", "-out", str(cert), "-days", "2",
                     "-extfile", str(ext), cwd=self.dir)
        finally:
            os.umask(old)
        os.chmod(cert, 0o644)
        return CertPair(cert, key)
