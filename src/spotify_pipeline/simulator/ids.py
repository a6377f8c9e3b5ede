"""Reversible, random-looking base62 IDs so the catalog can stay lazy: an ID decodes to its index."""

from __future__ import annotations

import hashlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22
_MODULUS = 62**ID_LENGTH
# Odd and not a multiple of 31, so it is invertible modulo 62**22.
_MULTIPLIER = 0x9E3779B97F4A7C15F39CC0605CEDC835
_INVERSE = pow(_MULTIPLIER, -1, _MODULUS)
_INDEX_LIMIT = 2**40


def _offset(seed: int, kind: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{kind}".encode(), digest_size=16).digest()
    return int(int.from_bytes(digest, "big") % _MODULUS)


def _to_base62(number: int) -> str:
    chars = []
    for _ in range(ID_LENGTH):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def encode_id(seed: int, kind: str, index: int) -> str:
    """The base62 ID of entity `index` of `kind` in the catalog generated from `seed`."""
    return _to_base62((index * _MULTIPLIER + _offset(seed, kind)) % _MODULUS)


def decode_id(seed: int, kind: str, spotify_id: str) -> int | None:
    """The index behind `spotify_id`, or None when it is not an ID of this kind and seed."""
    if len(spotify_id) != ID_LENGTH or any(c not in ALPHABET for c in spotify_id):
        return None
    number = 0
    for char in spotify_id:
        number = number * 62 + ALPHABET.index(char)
    index = ((number - _offset(seed, kind)) * _INVERSE) % _MODULUS
    return index if index < _INDEX_LIMIT else None


def is_base62_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in ALPHABET for c in text)
