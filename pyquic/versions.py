# QUIC version numbers and the per-version constants that differ between
# QUIC v1 (RFC 9000/9001) and QUIC v2 (RFC 9369): the Initial salt, the HKDF
# label prefix, the Retry integrity key and nonce, and the long-header packet
# type bits.  Code asks a VersionInfo; it never compares version numbers.
from __future__ import annotations

from dataclasses import dataclass

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF


@dataclass(frozen=True)
class VersionInfo:
    version: int
    name: str
    initial_salt: bytes
    label_prefix: bytes  # b"quic " or b"quicv2 "
    retry_key: bytes
    retry_nonce: bytes
    # Long-header packet type (the two bits after the fixed bit) per kind.
    type_initial: int
    type_0rtt: int
    type_handshake: int
    type_retry: int

    def label(self, name: bytes) -> bytes:
        return self.label_prefix + name


VERSIONS: dict[int, VersionInfo] = {
    QUIC_V1: VersionInfo(
        version=QUIC_V1,
        name="v1",
        initial_salt=bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
        label_prefix=b"quic ",
        retry_key=bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"),
        retry_nonce=bytes.fromhex("461599d35d632bf2239825bb"),
        type_initial=0b00,
        type_0rtt=0b01,
        type_handshake=0b10,
        type_retry=0b11,
    ),
    # RFC 9369 §3.
    QUIC_V2: VersionInfo(
        version=QUIC_V2,
        name="v2",
        initial_salt=bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
        label_prefix=b"quicv2 ",
        retry_key=bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"),
        retry_nonce=bytes.fromhex("d86969bc2d7c6d9990efb04a"),
        type_initial=0b01,
        type_0rtt=0b10,
        type_handshake=0b11,
        type_retry=0b00,
    ),
}


def version_info(version: int) -> VersionInfo:
    try:
        return VERSIONS[version]
    except KeyError:
        raise ValueError(f"unsupported QUIC version 0x{version:08x}") from None
