import stat

import pytest
from cryptography.fernet import Fernet

from app.crypto import SecretBox, SecretError, load_secret_box


def test_key_file_is_created_private_and_reused(tmp_path):
    box = load_secret_box(tmp_path, {})
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = box.encrypt("hello")
    assert token != "hello" and "hello" not in token
    assert load_secret_box(tmp_path, {}).decrypt(token) == "hello"


def test_environment_key_wins_over_key_file(tmp_path):
    key = Fernet.generate_key()
    box = load_secret_box(tmp_path, {"ALGOSTAGE_SECRET_KEY": key.decode()})
    assert box.keys == [key]
    assert not (tmp_path / "secret.key").exists()


def test_wrong_key_cannot_decrypt_and_says_so_without_the_secret():
    token = SecretBox([Fernet.generate_key()]).encrypt("s3cr3t")
    with pytest.raises(SecretError) as e:
        SecretBox([Fernet.generate_key()]).decrypt(token)
    assert "s3cr3t" not in str(e.value)


def test_rotation_keeps_old_tokens_readable():
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretBox([old]).encrypt("x")
    both = SecretBox([new, old])
    assert both.decrypt(token) == "x"
    assert SecretBox([new]).decrypt(both.reencrypt(token)) == "x"
