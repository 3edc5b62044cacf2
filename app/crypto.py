"""Encryption of secrets kept in the database (Gitea token, MinIO secret key, …).

Keys come from `ALGOSTAGE_SECRET_KEY` (comma-separated Fernet keys, newest first) or from the
key file `$ALGOSTAGE_HOME/secret.key` (one key per line, newest first, mode 0600). The key is
never stored in the database. Rotation adds a new key in front and re-encrypts every secret;
older keys stay readable through MultiFernet until they are dropped.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from app.errors import AlgoStageError, Message

KEY_FILE = "secret.key"
PREFIX = "fernet:"


class SecretError(AlgoStageError):
    """A secret could not be decrypted (wrong or missing key); never carries the secret."""
    code = "secret"


class SecretBox:
    """Encrypts and decrypts short strings with the newest key, reads with any known key."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretError(Message("secret.no_key", "no secret key configured"))
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in self._keys])

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Return the plaintext; raises SecretError if no known key opens it."""
        if not token.startswith(PREFIX):
            raise SecretError(Message("secret.not_encrypted", "value is not an encrypted secret"))
        try:
            return self._fernet.decrypt(token[len(PREFIX):].encode()).decode()
        except InvalidToken as e:
            raise SecretError(Message("secret.undecryptable", "secret cannot be decrypted with the configured keys")) from e

    def reencrypt(self, token: str) -> str:
        """Re-encrypt with the newest key (MultiFernet.rotate)."""
        return PREFIX + self._fernet.rotate(token[len(PREFIX):].encode()).decode()


def load_secret_box(home: Path, environ: Mapping[str, str] = os.environ) -> SecretBox:
    """Keys from ALGOSTAGE_SECRET_KEY, else from the key file, created (0600) when missing."""
    env_keys = environ.get("ALGOSTAGE_SECRET_KEY", "").strip()
    if env_keys:
        return SecretBox([k.strip().encode() for k in env_keys.split(",") if k.strip()])
    path = home / KEY_FILE
    if not path.exists():
        write_key_file(path, [Fernet.generate_key()])
    return SecretBox([line.encode() for line in path.read_text().split() if line])


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Write keys atomically with mode 0600 (created with that mode, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(k.decode() for k in keys) + "\n")
    os.replace(tmp, path)


def mask(value: str | None) -> str:
    """What pages and logs show instead of a secret."""
    return "" if not value else "••••••••"
