"""Secrets of a MOS study: judge tokens, the admin password, safe file names.

* A judge's token is 32 random URL-safe characters from :mod:`secrets`
  (192 bits): not sequential, not derived from a name or an id.  The database
  keeps only its SHA-256, so a leaked database does not leak working links.
* The admin password is stored as a salted scrypt hash.
* Anonymous clip ids and file names are random hex; they say nothing about the
  system or the content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 24
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
CLIP_ID_RE = re.compile(r"^[0-9a-f]{20}$")
CLIP_FILE_RE = re.compile(r"^[0-9a-f]{20}\.mp4$")


def new_token() -> str:
    """A fresh judge token (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def new_clip_id() -> str:
    return secrets.token_hex(10)


def new_completion_code() -> str:
    return "VB-" + secrets.token_hex(4).upper()


def new_password() -> str:
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not password or not stored:
        return False
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), dklen=32,
                             n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ***, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", str(url))
