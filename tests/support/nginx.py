"""Debian's nginx as a TLS + basic-auth front for the test Elasticsearch node, the way 2013-era
(and many current) deployments protect a cluster that has no security module of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

CONF = """
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 128; }}
http {{
  log_format who '$remote_user $status $request_method $uri';
  access_log {dir}/access.log who;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 200m;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    auth_basic "logpipe test cluster";
    auth_basic_user_file {dir}/htpasswd;
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }}
  }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                     else None)


class NginxFront:
    """nginx on a free loopback port: TLS with ``cert``/``key``, basic auth for one user,
    proxying to ``upstream``. ``access_log()`` gives (user, status, method, path) per request."""

    def __init__(self, directory: Path, upstream: str, cert: Path, key: Path,
                 user: str = "logpipe"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.upstream, self.cert, self.key, self.user = upstream.rstrip("/"), cert, key, user
        self.password = secrets.token_urlsafe(18)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, ca: Path, timeout: float = 60) -> "NginxFront":
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=self.password,
                                capture_output=True, text=True, check=True).stdout.strip()
        (self.dir / "htpasswd").write_text(f"{self.user}:{hashed}\n")
        conf = self.dir / "nginx.conf"
        conf.write_text(CONF.format(dir=self.dir, port=self.port, cert=self.cert, key=self.key,
                                    upstream=self.upstream))
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(self.dir), "-e",
                                      str(self.dir / "error.log"), "-c", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        context = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.error_log()[-2000:])
            try:  # ready: the port answers a TLS handshake
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nginx did not listen in time: " + self.error_log()[-2000:])

    def error_log(self) -> str:
        try:
            return (self.dir / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def access_log(self) -> list[tuple[str, int, str, str]]:
        try:
            lines = (self.dir / "access.log").read_text().splitlines()
        except OSError:
            return []
        rows = []
        for line in lines:
            user, status, method, path = line.split(" ", 3)
            rows.append((user, int(status), method, path))
        return rows

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
