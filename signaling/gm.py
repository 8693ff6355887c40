"""国密 (Chinese commercial cryptography) primitives for ``SANKE_CRYPTO=gm``.

- **SM3** (GB/T 32905) and **HMAC-SM3** come from ``cryptography`` (OpenSSL's constant-time
  implementations).
- **SM2** signatures (GB/T 32918.2, with the ``Z`` value of the signer's identity) use the
  elliptic-curve arithmetic of ``gmssl`` (pure Python; ``cryptography`` has no SM2). gmssl is
  used only through this module, which does what gmssl leaves out or gets wrong:

  * the nonce ``k`` comes from :mod:`secrets` (gmssl's own default draws it with
    :func:`random.choice`, which is predictable, and a predictable ``k`` gives away the key);
  * ``e = SM3(Z ‖ M)`` is computed here, so the signer's ID is ours to choose (GM/T 0009's
    default ``1234567812345678``; gmssl hard-codes it);
  * a public key must be a point on the curve, and ``r``, ``s`` must lie in ``[1, n-1]``
    before gmssl looks at a signature (it checks neither);
  * gmssl's constructor ``lstrip``\\s the characters ``0`` and ``4`` off a key that starts
    with ``04``, mangling keys whose ``x`` starts with a zero digit: the key is set after.

  gmssl is not constant-time. Signing happens only in the server (teaching records, no
  attacker-chosen input, no remote timing oracle worth the name); verifying needs no secret.
  docs/security.md ("国密") says what this covers and what it does not.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from gmssl.sm2 import CryptSM2

# GM/T 0009-2012: the user ID both sides assume when none was agreed.
DEFAULT_ID = b"1234567812345678"


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


@dataclass(frozen=True)
class Curve:
    """Short Weierstrass curve parameters (hex, as GB/T 32918 prints them)."""

    p: str
    a: str
    b: str
    gx: str
    gy: str
    n: str

    @property
    def size(self) -> int:
        return len(self.n)  # hex digits of one coordinate

    def table(self) -> dict[str, str]:
        return {"p": self.p, "a": self.a, "b": self.b, "g": self.gx + self.gy, "n": self.n}

    def on_curve(self, x: int, y: int) -> bool:
        p = int(self.p, 16)
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x + int(self.a, 16) * x + int(self.b, 16))) % p == 0


# GB/T 32918.5-2017: the recommended 256-bit curve (sm2p256v1).
SM2P256V1 = Curve(
    p="FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF",
    a="FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC",
    b="28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93",
    gx="32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7",
    gy="BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0",
    n="FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123",
)


class Sm2Error(ValueError):
    pass


def _engine(curve: Curve, private_hex: str, public_hex: str) -> CryptSM2:
    engine = CryptSM2(private_key=private_hex, public_key=public_hex, ecc_table=curve.table())
    engine.public_key = public_hex  # undo gmssl's lstrip("04") (see the module docstring)
    return engine


class Sm2PublicKey:
    """A public key: ``x ‖ y`` as hex (an optional leading ``04``, the uncompressed form)."""

    def __init__(self, text: str, curve: Curve = SM2P256V1) -> None:
        digits = 2 * curve.size
        raw = text.strip().lower()
        if len(raw) == digits + 2 and raw.startswith("04"):
            raw = raw[2:]
        try:
            x, y = int(raw[: curve.size], 16), int(raw[curve.size :], 16)
        except ValueError:
            raise Sm2Error("an SM2 public key is hex") from None
        if len(raw) != digits or not curve.on_curve(x, y):
            raise Sm2Error(f"not an SM2 public key ({digits} hex digits, a point on the curve)")
        self.curve = curve
        self.hex = raw

    def __str__(self) -> str:
        return "04" + self.hex

    def z(self, uid: bytes = DEFAULT_ID) -> bytes:
        """Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) (GB/T 32918.2, 5.5)."""
        c = self.curve
        entl = (8 * len(uid)).to_bytes(2, "big")
        return sm3(entl + uid + bytes.fromhex(c.a + c.b + c.gx + c.gy + self.hex))

    def digest(self, message: bytes, uid: bytes = DEFAULT_ID) -> bytes:
        """e = SM3(Z ‖ M), what is signed."""
        return sm3(self.z(uid) + message)

    def verify(self, message: bytes, signature: str, uid: bytes = DEFAULT_ID) -> bool:
        """Whether ``signature`` (hex ``r ‖ s``) is this key's SM2 signature of ``message``."""
        size = self.curve.size
        if len(signature) != 2 * size:
            return False
        try:
            r, s = int(signature[:size], 16), int(signature[size:], 16)
        except ValueError:
            return False
        n = int(self.curve.n, 16)
        if not (1 <= r < n and 1 <= s < n):
            return False
        engine = _engine(self.curve, "", self.hex)
        return bool(engine.verify(signature.lower(), self.digest(message, uid)))


class Sm2PrivateKey:
    """A private key ``d`` (hex); signs with a fresh random ``k`` each time."""

    def __init__(self, text: str, curve: Curve = SM2P256V1) -> None:
        try:
            d = int(text.strip(), 16)
        except ValueError:
            raise Sm2Error("an SM2 private key is hex") from None
        # d in [1, n-2]: signing needs (1 + d) invertible mod n.
        if not 1 <= d <= int(curve.n, 16) - 2:
            raise Sm2Error("an SM2 private key is a number in [1, n-2]")
        self.curve = curve
        self._d = f"{d:0{curve.size}x}"
        engine = _engine(curve, self._d, curve.gx + curve.gy)
        self.public_key = Sm2PublicKey(engine._kg(d, curve.gx + curve.gy), curve)

    @classmethod
    def generate(cls, curve: Curve = SM2P256V1) -> Sm2PrivateKey:
        return cls(f"{secrets.randbelow(int(curve.n, 16) - 2) + 1:x}", curve)

    def hex(self) -> str:
        return self._d

    def sign(self, message: bytes, uid: bytes = DEFAULT_ID, *, k: int | None = None) -> str:
        """SM2 signature of ``message``, hex ``r ‖ s``. ``k`` only for known-answer tests."""
        e = self.public_key.digest(message, uid)
        engine = _engine(self.curve, self._d, self.public_key.hex)
        n = int(self.curve.n, 16)
        for _ in range(64):
            nonce = k if k is not None else secrets.randbelow(n - 1) + 1
            signature: str | None = engine.sign(e, f"{nonce:0{self.curve.size}x}")
            if signature is not None:
                return signature
            if k is not None:
                raise Sm2Error("this k gives no signature")
        raise Sm2Error("no signature in 64 draws of k")  # probability ~ 2^-16000
