"""国密 primitives against the published test vectors (GB/T 32905 for SM3, GB/T 32918.2 for
SM2 signatures) and the checks signaling/gm.py adds around gmssl."""

from __future__ import annotations

import pytest

from signaling.gm import (
    SM2P256V1,
    Curve,
    Sm2Error,
    Sm2PrivateKey,
    Sm2PublicKey,
    hmac_sm3,
    sm3_hex,
)

# GB/T 32918.2-2016 Annex A (= GM/T 0003.2-2012 A.2): the Fp-256 example curve and key.
EXAMPLE_CURVE = Curve(
    p="8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3",
    a="787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498",
    b="63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A",
    gx="421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D",
    gy="0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2",
    n="8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7",
)
EXAMPLE_D = "128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263"
EXAMPLE_PUBLIC = (
    "0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A"
    "7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857"
)
EXAMPLE_ID = b"ALICE123@YAHOO.COM"
EXAMPLE_Z = "F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A"
EXAMPLE_E = "B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76"
EXAMPLE_K = "6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F"
EXAMPLE_R = "40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1"
EXAMPLE_S = "6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7"
MESSAGE = b"message digest"


def test_sm3_vectors_of_gbt_32905() -> None:
    assert sm3_hex(b"abc") == ("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    assert sm3_hex(b"abcd" * 16) == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_hmac_sm3_is_keyed() -> None:
    mac = hmac_sm3(b"k" * 32, b"text")
    assert len(mac) == 32
    assert mac != hmac_sm3(b"j" * 32, b"text")
    assert mac == hmac_sm3(b"k" * 32, b"text")


def test_sm2_published_signature_verifies() -> None:
    public = Sm2PublicKey(EXAMPLE_PUBLIC, EXAMPLE_CURVE)
    assert public.z(EXAMPLE_ID).hex() == EXAMPLE_Z.lower()
    assert public.digest(MESSAGE, EXAMPLE_ID).hex() == EXAMPLE_E.lower()
    assert public.verify(MESSAGE, EXAMPLE_R + EXAMPLE_S, EXAMPLE_ID)
    assert not public.verify(b"message digesT", EXAMPLE_R + EXAMPLE_S, EXAMPLE_ID)
    assert not public.verify(MESSAGE, EXAMPLE_R + EXAMPLE_S)  # another ID, another Z


def test_sm2_signing_with_the_published_k_gives_the_published_signature() -> None:
    key = Sm2PrivateKey(EXAMPLE_D, EXAMPLE_CURVE)
    assert key.public_key.hex == EXAMPLE_PUBLIC.lower()
    signature = key.sign(MESSAGE, EXAMPLE_ID, k=int(EXAMPLE_K, 16))
    assert signature == (EXAMPLE_R + EXAMPLE_S).lower()


def test_sm2_round_trip_on_the_recommended_curve() -> None:
    key = Sm2PrivateKey.generate()
    assert key.curve is SM2P256V1
    first, second = key.sign(b"record"), key.sign(b"record")
    assert first != second  # a fresh k each time
    public = Sm2PublicKey(str(key.public_key))  # the 04-prefixed form reads back
    assert public.verify(b"record", first) and public.verify(b"record", second)
    assert not public.verify(b"recorD", first)
    assert not Sm2PrivateKey.generate().public_key.verify(b"record", first)


def test_sm2_rejects_out_of_range_signatures_and_points_off_the_curve() -> None:
    key = Sm2PrivateKey.generate()
    public = key.public_key
    n = int(SM2P256V1.n, 16)
    signature = key.sign(b"x")
    r, s = int(signature[:64], 16), int(signature[64:], 16)
    for bad in (f"{0:064x}{s:064x}", f"{r:064x}{s + n:064x}"[:128], f"{r:064x}{0:064x}"):
        assert not public.verify(b"x", bad)
    assert not public.verify(b"x", signature[:-2])
    assert not public.verify(b"x", "zz" * 64)
    off_curve = public.hex[:-1] + ("0" if public.hex[-1] != "0" else "1")
    with pytest.raises(Sm2Error):
        Sm2PublicKey(off_curve)
    with pytest.raises(Sm2Error):
        Sm2PrivateKey("0")


def test_public_keys_starting_with_zero_digits_survive_gmssl() -> None:
    # gmssl's constructor lstrips "0" and "4" from 04-prefixed keys; ours must not care.
    for _ in range(400):
        key = Sm2PrivateKey.generate()
        if key.public_key.hex.startswith(("0", "4")):
            break
    else:
        pytest.skip("no key with a leading 0/4 digit drawn")
    public = Sm2PublicKey("04" + key.public_key.hex)
    assert public.verify(b"m", key.sign(b"m"))
