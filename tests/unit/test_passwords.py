from core.passwords import hash_password, seal, unseal, verify_password


def test_hashes_are_salted_and_verify():
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("pw", first) and not verify_password("pW", first)
    assert not verify_password("pw", "garbage")


def test_sealed_passwords_open_only_with_the_same_secret():
    sealed = seal("pw", "secret")
    assert "pw" not in sealed
    assert unseal(sealed, "secret") == "pw"
    assert unseal(sealed, "another") is None
