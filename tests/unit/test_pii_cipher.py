"""PII at rest: AES-256-GCM under a key ring, each ciphertext bound to its row."""

from __future__ import annotations

import base64

import pytest

from services.registry.pii import (
    DEV_PII_KEYS,
    PiiCipher,
    PiiError,
    PiiKeyMissing,
    PiiTampered,
    main,
)

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
AAD = b"p-1:name"


def test_a_value_decrypts_to_what_was_encrypted() -> None:
    cipher = PiiCipher(f"k1:{K1}")
    key_id, blob = cipher.encrypt("张三", AAD)
    assert key_id == "k1"
    assert cipher.decrypt(key_id, blob, AAD) == "张三"


def test_an_empty_value_round_trips() -> None:
    cipher = PiiCipher(f"k1:{K1}")
    assert cipher.decrypt(*cipher.encrypt("", AAD), AAD) == ""


def test_the_blob_is_a_12_byte_nonce_then_ciphertext_and_16_byte_tag() -> None:
    _, blob = PiiCipher(f"k1:{K1}").encrypt("13812345678", AAD)
    assert len(blob) == 12 + len(b"13812345678") + 16
    assert b"13812345678" not in blob


def test_encrypting_the_same_value_twice_gives_different_ciphertexts() -> None:
    cipher = PiiCipher(f"k1:{K1}")
    _, first = cipher.encrypt("张三", AAD)
    _, second = cipher.encrypt("张三", AAD)
    assert first[:12] != second[:12]
    assert first != second


def test_a_ciphertext_moved_to_another_row_fails_to_decrypt() -> None:
    cipher = PiiCipher(f"k1:{K1}")
    key_id, blob = cipher.encrypt("张三", b"p-1:name")
    with pytest.raises(PiiTampered):
        cipher.decrypt(key_id, blob, b"p-2:name")
    with pytest.raises(PiiTampered):
        cipher.decrypt(key_id, blob, b"p-1:phone")


@pytest.mark.parametrize("position", [0, 12, -1])
def test_a_tampered_blob_fails_to_decrypt(position: int) -> None:
    cipher = PiiCipher(f"k1:{K1}")
    key_id, blob = cipher.encrypt("张三", AAD)
    altered = bytearray(blob)
    altered[position] ^= 0x01
    with pytest.raises(PiiTampered, match="failed authentication"):
        cipher.decrypt(key_id, bytes(altered), AAD)


def test_a_truncated_blob_fails_to_decrypt() -> None:
    cipher = PiiCipher(f"k1:{K1}")
    key_id, blob = cipher.encrypt("张三", AAD)
    for cut in (blob[:-1], blob[:20], b""):
        with pytest.raises(PiiTampered):
            cipher.decrypt(key_id, cut, AAD)


def test_a_value_under_a_key_id_the_ring_lacks_fails_naming_it() -> None:
    _, blob = PiiCipher(f"k0:{K1}").encrypt("张三", AAD)
    with pytest.raises(PiiKeyMissing, match="'k0' is not in the key ring") as caught:
        PiiCipher(f"k1:{K1}").decrypt("k0", blob, AAD)
    assert caught.value.key_id == "k0"
    assert isinstance(caught.value, PiiError)


def test_the_same_id_with_a_different_key_fails_as_tampered() -> None:
    key_id, blob = PiiCipher(f"k1:{K1}").encrypt("张三", AAD)
    with pytest.raises(PiiTampered):
        PiiCipher(f"k1:{K2}").decrypt(key_id, blob, AAD)


def test_the_first_key_of_the_ring_encrypts_and_every_key_decrypts() -> None:
    old = PiiCipher(f"k1:{K1}")
    ring = PiiCipher(f"k2:{K2}, k1:{K1}")
    old_id, old_blob = old.encrypt("张三", AAD)
    new_id, new_blob = ring.encrypt("李四", AAD)
    assert (ring.current_key_id, ring.key_ids) == ("k2", ("k2", "k1"))
    assert new_id == "k2"
    assert ring.decrypt(old_id, old_blob, AAD) == "张三"
    assert ring.decrypt(new_id, new_blob, AAD) == "李四"


def test_only_values_under_an_older_key_need_rotation() -> None:
    ring = PiiCipher(f"k2:{K2},k1:{K1}")
    assert ring.needs_rotation("k1")
    assert ring.needs_rotation("unknown")
    assert not ring.needs_rotation("k2")


def test_rotation_moves_a_value_onto_the_current_key() -> None:
    old_id, old_blob = PiiCipher(f"k1:{K1}").encrypt("张三", AAD)
    ring = PiiCipher(f"k2:{K2},k1:{K1}")
    new_id, new_blob = ring.rotate(old_id, old_blob, AAD)
    assert new_id == "k2"
    assert not ring.needs_rotation(new_id)
    assert ring.decrypt(new_id, new_blob, AAD) == "张三"
    assert PiiCipher(f"k2:{K2}").decrypt(new_id, new_blob, AAD) == "张三"  # k1 can retire
    assert ring.decrypt(old_id, old_blob, AAD) == "张三"  # the old entry still decrypts


def test_rotating_a_value_already_current_leaves_it_unchanged() -> None:
    ring = PiiCipher(f"k2:{K2},k1:{K1}")
    key_id, blob = ring.encrypt("张三", AAD)
    assert ring.rotate(key_id, blob, AAD) == (key_id, blob)


def test_rotation_keeps_the_row_binding() -> None:
    old_id, old_blob = PiiCipher(f"k1:{K1}").encrypt("张三", AAD)
    ring = PiiCipher(f"k2:{K2},k1:{K1}")
    with pytest.raises(PiiTampered):
        ring.rotate(old_id, old_blob, b"p-2:name")
    new_id, new_blob = ring.rotate(old_id, old_blob, AAD)
    with pytest.raises(PiiTampered):
        ring.decrypt(new_id, new_blob, b"p-2:name")


def test_url_safe_base64_keys_are_accepted() -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    url_safe = base64.urlsafe_b64encode(raw).decode()
    assert "-" in url_safe or "_" in url_safe
    key_id, blob = PiiCipher(f"u:{url_safe}").encrypt("x", AAD)
    assert PiiCipher(f"s:{base64.b64encode(raw).decode()}").decrypt("s", blob, AAD) == "x"
    assert key_id == "u"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "entry 1 is empty"),
        (f"k1:{K1},", "entry 2 is empty"),
        (K1, "must look like 'key_id:base64key'"),
        (f":{K1}", "key id must be"),
        (f"k 1:{K1}", "key id must be"),
        (f"k1:{K1},k1:{K2}", "appears twice"),
        ("k1:not base64!", "not valid base64"),
        ("k1:密钥", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "must be 32 bytes, got 5"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "must be 32 bytes, got 16"),
    ],
)
def test_a_malformed_key_ring_is_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        PiiCipher(spec)
    assert K1 not in str(caught.value)
    assert K2 not in str(caught.value)


def test_generated_keys_are_32_random_bytes_usable_in_a_ring() -> None:
    first, second = PiiCipher.generate_key(), PiiCipher.generate_key()
    assert first != second
    assert len(base64.b64decode(first, validate=True)) == 32
    cipher = PiiCipher(f"k9:{first}")
    assert cipher.decrypt(*cipher.encrypt("张三", AAD), AAD) == "张三"


def test_the_development_key_ring_works_and_says_it_is_for_development() -> None:
    assert DEV_PII_KEYS.startswith("dev")
    cipher = PiiCipher(DEV_PII_KEYS)
    assert cipher.decrypt(*cipher.encrypt("张三", AAD), AAD) == "张三"


def test_the_cli_prints_a_new_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--new-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32


def test_the_cli_prints_a_key_ring_entry_when_given_an_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--new-key", "--key-id", "k3"]) == 0
    entry = capsys.readouterr().out.strip()
    assert PiiCipher(entry).current_key_id == "k3"


def test_the_cli_without_an_action_prints_help_and_fails() -> None:
    assert main([]) == 2
