import base64

from core.passwords import hash_password, seal, unseal, verify_password

# Long enough that no random salt or ciphertext can hold it by chance (a two-letter password
# turned up in about one base64 ciphertext in 40, and the test failed that often).
PASSWORD = "correct-horse-battery-staple-7f3a9c"


def test_hashes_are_salted_and_verify():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$")
    assert verify_password(PASSWORD, first) and not verify_password(PASSWORD.upper(), first)
    assert not verify_password(PASSWORD, "garbage")


def test_sealed_passwords_open_only_with_the_same_secret():
    sealed = seal(PASSWORD, "secret")
    raw = base64.urlsafe_b64decode(sealed)
    assert PASSWORD not in sealed and PASSWORD.encode() not in raw
    assert unseal(sealed, "secret") == PASSWORD
    assert unseal(sealed, "another") is None
