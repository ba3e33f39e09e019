"""`python -m echain.healthcheck`: exit 0 when this machine's server answers GET /healthz with 200, else 1.

The container's HEALTHCHECK: the slim image has no curl, and this imports only the standard library, so a probe
every few seconds stays cheap. It reads ECHAIN_PORT (and ECHAIN_HOST unless that is a wildcard address).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

_WILDCARDS = ("", "0.0.0.0", "::")


def health_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The /healthz URL of the server configured by the environment."""
    host = environ.get("ECHAIN_HOST", "")
    host = "127.0.0.1" if host in _WILDCARDS else host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{environ.get('ECHAIN_PORT') or '8080'}/healthz"


def check(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what was seen)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a fixed http URL
            return resp.status == 200, f"{resp.status} {resp.read(200).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:  # 503: database or Redis down
        return False, f"{exc.code} {exc.read(200).decode(errors='replace')}"
    except (OSError, ValueError) as exc:
        return False, f"unreachable: {exc}"


def main() -> int:
    """Probe once and report on stderr when unhealthy."""
    url = health_url()
    ok, seen = check(url)
    if not ok:
        print(f"unhealthy: {url} -> {seen}", file=sys.stderr)  # noqa: T201 - docker shows it in `inspect`
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
