# Fuzz target: the C packet-protection entry points (pyquic/_crypto.c through
# pyquic._crypto), differentially against the pure-Python twin
# (pyquic._crypto_py).  Run it under AddressSanitizer with fuzz/asan.sh.
#
# Input: read with atheris.FuzzedDataProvider into a plan (pure data): a
# cipher suite and keys (occasionally of a wrong length or an unknown suite),
# one operation -- AEAD.open / seal / seal_into, HeaderProtection.mask /
# apply / remove, PacketProtection.unprotect / unprotect_batch / protect /
# protect_into / protect_batch / protect_stream_run, decode_packet_number --
# and its arguments:
# arbitrary bytes, offsets, lengths and packet numbers drawn around their
# boundaries (sample room, buffer ends, 2^62, 2^63, negative), inputs that
# alias the `out` buffer, non-contiguous and read-only buffers, arguments of
# the wrong kind, and packets that really authenticate (protected by the
# Python twin first, sometimes with one bit flipped), so the success paths
# run too.  The plan is then carried out by both implementations on fresh
# buffers.
# Documented behaviour checked (pyquic/_crypto.pyi): only CryptoError, or
# TypeError for an argument of the wrong kind; both implementations return
# the same values, leave `out` with the same bytes and raise the same error
# class with the same CryptoError message.  Under ASan, any out-of-bounds
# access in the C code aborts the run.
import os
import sys

import atheris

import _common

_common.preimport()
with atheris.instrument_imports(include=_common.INSTRUMENT):
    from pyquic import _crypto as C
    from pyquic import _crypto_py as P

# fuzz/asan.sh says which build it means to test; make sure that is the one loaded.
assert C.IMPLEMENTATION == "c", C.IMPLEMENTATION
assert C.__file__.startswith(os.environ.get("PYQUIC_FUZZ_EXPECT_CRYPTO_FROM", "")), C.__file__

SUITES = (0x1301, 0x1302, 0x1303)
KEY_LENGTH = {0x1301: 16, 0x1302: 32, 0x1303: 32}
PN_LIMIT = 1 << 62
EDGES = (0, 1, -1, 2, 3, 4, 19, 20, 21, PN_LIMIT - 1, PN_LIMIT, (1 << 63) - 1, 1 << 63, 1 << 64, -(1 << 63), -(1 << 63) - 1)
WRONG_KINDS = (None, 1.5, "x", b"")  # for an int argument (b"" is not an int either)
SPECS = {"bytes", "bytearray", "memoryview", "strided", "wrong", "out", "out_tail", "alias"}


class Plan:
    """Reads decisions from the fuzzer's bytes."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)
        self.wrong_kind = False  # some argument is of a wrong kind: TypeError is documented

    def int_near(self, *anchors: int) -> object:
        f = self.fdp
        # (An exhausted provider reads as zeros: zero picks the first anchor.)
        choice = f.ConsumeIntInRange(0, 15)
        if choice == 15 and f.ConsumeIntInRange(0, 3) == 3:
            self.wrong_kind = True
            return WRONG_KINDS[f.ConsumeIntInRange(0, len(WRONG_KINDS) - 1)]
        if choice < 8 and anchors:
            return anchors[f.ConsumeIntInRange(0, len(anchors) - 1)] + f.ConsumeIntInRange(-2, 2)
        if choice < 12:
            return EDGES[f.ConsumeIntInRange(0, len(EDGES) - 1)]
        return f.ConsumeIntInRange(-64, 1 << 16)

    def pn(self) -> object:
        f = self.fdp
        if f.ConsumeIntInRange(0, 3) == 3:
            return self.int_near(PN_LIMIT - 1, 0)
        return f.ConsumeIntInRange(0, (1 << 32) - 1)

    def data(self, max_len: int = 96) -> bytes:
        return self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, max_len))

    def buffer(self, content: bytes, out_len: int) -> tuple:
        """How an input is passed: bytes, bytearray, memoryview, a strided
        view, not a buffer at all, or inside `out` (the content is first
        written there: in-place and overlapping calls)."""
        f = self.fdp
        kind = f.ConsumeIntInRange(0, 15)
        if kind < 8:
            return ("bytes", content)
        if kind == 8:
            return ("bytearray", content)
        if kind == 9:
            return ("memoryview", content)
        if kind == 10:
            return ("strided", content)
        if kind == 11:
            self.wrong_kind = True
            return ("wrong", None)
        if len(content) > out_len:
            return ("bytes", content)
        return ("alias", f.ConsumeIntInRange(0, out_len - len(content)), content)

    def out(self, out_len: int) -> tuple:
        """The `out` argument: the buffer itself, a view of its tail, or (rarely)
        something unwritable."""
        kind = self.fdp.ConsumeIntInRange(0, 15)
        if kind < 12:
            return ("out",)
        if kind < 14:
            return ("out_tail", self.fdp.ConsumeIntInRange(0, out_len))
        self.wrong_kind |= kind == 15
        return (("bytes", b"read-only"), ("strided", b"x" * 40), ("wrong", None))[kind - 13]

    def keys(self) -> tuple:
        f = self.fdp
        suite = SUITES[f.ConsumeIntInRange(0, 2)]
        if f.ConsumeIntInRange(0, 63) == 63:
            suite = self.int_near(0x1301, 0x1303)
        n = KEY_LENGTH.get(suite, 16) if isinstance(suite, int) else 16
        lengths = [n, 12, n]
        if f.ConsumeIntInRange(0, 63) == 63:
            lengths[f.ConsumeIntInRange(0, 2)] += f.ConsumeIntInRange(-3, 3) or 1
        return (suite,) + tuple(bytes(f.ConsumeIntInRange(0, 255) for _ in range(max(0, k))) for k in lengths)


def materialize(spec: tuple, out) -> object:
    kind = spec[0]
    if kind == "bytes":
        return spec[1]
    if kind == "bytearray":
        return bytearray(spec[1])
    if kind == "memoryview":
        return memoryview(spec[1])
    if kind == "strided":
        return memoryview(spec[1] * 2)[::2] if spec[1] else memoryview(b"ab")[::2]
    if kind == "wrong":
        return "not a buffer"
    if kind == "out":
        return out
    if kind == "out_tail":
        return memoryview(out)[spec[1] :]
    start, content = spec[1], spec[2]  # "alias"
    out[start : start + len(content)] = content
    return memoryview(out)[start : start + len(content)]


def protected_packet(plan: Plan, keys: tuple) -> tuple[bytes, int, int]:
    """A packet that authenticates under `keys` (made by the Python twin), its
    pn_offset and packet number; sometimes one bit flipped."""
    f = plan.fdp
    pn_len = f.ConsumeIntInRange(1, 4)
    pn_offset = f.ConsumeIntInRange(1, 40)
    first = (f.ConsumeIntInRange(0, 63) << 2) | (pn_len - 1)
    header = bytes((first,)) + f.ConsumeBytes(pn_offset - 1).ljust(pn_offset - 1, b"\0") + bytes(pn_len)
    pn = f.ConsumeIntInRange(0, (1 << 30))
    header = header[:pn_offset] + (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    payload = plan.data(200).ljust(4 - pn_len, b"\0")
    try:
        packet = bytearray(P.PacketProtection(*keys).protect(header, payload, pn))
    except (P.CryptoError, TypeError):  # the plan's keys may be wrong on purpose
        return plan.data(120), pn_offset, pn
    if packet and f.ConsumeIntInRange(0, 7) == 7:
        at = f.ConsumeIntInRange(0, len(packet) - 1)
        packet[at] ^= 1 << f.ConsumeIntInRange(0, 7)
    return bytes(packet), pn_offset, pn


def make_plan(data: bytes) -> tuple:
    plan = Plan(data)
    f = plan.fdp
    keys = plan.keys()
    op = f.ConsumeIntInRange(0, 12)
    out_len = f.ConsumeIntInRange(0, 400)
    out = bytes(f.ConsumeIntInRange(0, 255) for _ in range(min(out_len, 8))).ljust(out_len, b"\xa5")
    if op == 0:  # AEAD.open
        pn, ad = plan.pn(), plan.data()
        ct = plan.data(150)
        if f.ConsumeBool():
            try:
                ct = P.AEAD(keys[0], keys[1], keys[2]).seal(pn, ad, ct)
            except (P.CryptoError, TypeError):
                pass
        args = ("open", pn, plan.buffer(ad, out_len), plan.buffer(ct, out_len))
    elif op == 1:  # AEAD.seal
        args = ("seal", plan.pn(), plan.buffer(plan.data(), out_len), plan.buffer(plan.data(150), out_len))
    elif op == 2:  # AEAD.seal_into
        ad, pt = plan.data(), plan.data(150)
        args = ("seal_into", plan.out(out_len), plan.int_near(0, out_len - len(pt) - 16, out_len),
                plan.pn(), plan.buffer(ad, out_len), plan.buffer(pt, out_len))
    elif op == 3:  # HeaderProtection.mask
        args = ("mask", plan.buffer(f.ConsumeBytes(f.ConsumeIntInRange(14, 18)), out_len))
    elif op in (4, 5):  # HeaderProtection.apply / remove
        packet = plan.data(100)
        args = ("apply" if op == 4 else "remove", plan.buffer(packet, out_len), plan.int_near(1, len(packet) - 20))
    elif op == 6:  # PacketProtection.unprotect
        if f.ConsumeBool():
            packet, pn_offset, pn = protected_packet(plan, keys)
        else:
            packet, pn_offset, pn = plan.data(150), f.ConsumeIntInRange(1, 30), 0
        if f.ConsumeIntInRange(0, 3) == 3:
            pn_offset = plan.int_near(pn_offset, len(packet) - 20, len(packet))
        args = ("unprotect", plan.buffer(packet, out_len), pn_offset, plan.int_near(pn - 1, -1, PN_LIMIT - 1))
    elif op == 7:  # PacketProtection.unprotect_batch
        buffer, segments, first_pn = b"", [], None
        for _ in range(f.ConsumeIntInRange(0, 5)):
            if f.ConsumeBool():
                packet, pn_offset, pn = protected_packet(plan, keys)
                first_pn = pn if first_pn is None else first_pn
            else:
                packet, pn_offset = plan.data(60), f.ConsumeIntInRange(1, 30)
            segment = [len(buffer), len(packet), pn_offset]
            buffer += packet
            if f.ConsumeIntInRange(0, 3) == 3:
                which = f.ConsumeIntInRange(0, 2)
                segment[which] = plan.int_near(segment[which], len(buffer), len(packet) - 20)
            if f.ConsumeIntInRange(0, 31) == 31:
                segment = segment[:2]  # not a 3-tuple: TypeError
                plan.wrong_kind = True
            segments.append(tuple(segment))
        buffer += plan.data(8)
        largest_pn = plan.int_near((first_pn or 0) - 1, -1, PN_LIMIT - 1)
        args = ("unprotect_batch", plan.buffer(buffer, out_len), segments, largest_pn)
    elif op in (8, 9):  # PacketProtection.protect / protect_into
        pn_len = f.ConsumeIntInRange(1, 4)
        header = bytes((f.ConsumeIntInRange(0, 63) << 2 | (pn_len - 1),)) + plan.data(30)
        if f.ConsumeIntInRange(0, 7) == 7:
            header = header[: f.ConsumeIntInRange(0, len(header))]
        payload = plan.data(150)
        hdr, pay = plan.buffer(header, out_len), plan.buffer(payload, out_len)
        total = len(header) + len(payload) + 16
        if op == 8:
            args = ("protect", hdr, pay, plan.pn())
        else:
            args = ("protect_into", plan.out(out_len), plan.int_near(0, out_len - total, out_len), hdr, pay, plan.pn())
    elif op == 10:  # PacketProtection.protect_batch
        packets = []
        for _ in range(f.ConsumeIntInRange(0, 4)):
            pn_len = f.ConsumeIntInRange(1, 4)
            header = bytes((pn_len - 1,)) + plan.data(24)
            item = (plan.buffer(header, out_len), plan.buffer(plan.data(60), out_len), plan.pn())
            if f.ConsumeIntInRange(0, 31) == 31:
                item = item[:2]
                plan.wrong_kind = True
            packets.append(item)
        args = ("protect_batch", packets)
    elif op == 12:  # PacketProtection.protect_stream_run
        pn_len = f.ConsumeIntInRange(1, 4)
        header_start = bytes((0x40 | f.ConsumeIntInRange(0, 7) << 2 | (pn_len - 1),)) + plan.data(24)
        if f.ConsumeIntInRange(0, 15) == 15:
            header_start = header_start[: f.ConsumeIntInRange(0, 1)] or plan.data(80)
        frames = []
        for _ in range(f.ConsumeIntInRange(0, 4)):
            item = (plan.int_near(0, 3, 63, 64, PN_LIMIT - 1), plan.int_near(0, 1, 16383, 16384, PN_LIMIT - 100),
                    plan.buffer(plan.data(120), out_len), f.ConsumeBool())
            if f.ConsumeIntInRange(0, 31) == 31:
                item = item[:3]
                plan.wrong_kind = True
            frames.append(item)
        args = ("protect_stream_run", plan.buffer(header_start, out_len), plan.pn(), frames,
                plan.int_near(0, 20, 100, 130, 1500), plan.int_near(0, 1, 32, 2000))
    else:
        pn_length = plan.int_near(1, 4)
        args = ("decode_packet_number", plan.int_near(0, 255, 65535), pn_length, plan.int_near(-1, 0, PN_LIMIT - 1))
    return keys, out, args, plan.wrong_kind


def _arg(value, out):
    if isinstance(value, tuple) and value and isinstance(value[0], str) and value[0] in SPECS:
        return materialize(value, out)
    if isinstance(value, list):  # batch items
        return [tuple(_arg(v, out) for v in item) for item in value]
    return value


def run(mod, keys: tuple, out_bytes: bytes, args: tuple) -> tuple:
    """Carry the plan out with one implementation: ('ok', result, out) or ('err', class, message)."""
    out = bytearray(out_bytes)
    name = args[0]
    try:
        suite, key, iv, hp = keys
        if name in ("open", "seal", "seal_into"):
            obj = mod.AEAD(suite, key, iv)
        elif name in ("mask", "apply", "remove"):
            obj = mod.HeaderProtection(suite, hp)
        elif name == "decode_packet_number":
            obj = mod
        else:
            obj = mod.PacketProtection(suite, key, iv, hp)
        if name == "unprotect_batch":
            call_args = (_arg(args[1], out), [tuple(s) for s in args[2]], args[3])
        else:
            call_args = tuple(_arg(a, out) for a in args[1:])
        result = getattr(obj, name)(*call_args)
    except mod.CryptoError as exc:
        return ("err", "CryptoError", str(exc))
    except TypeError:
        return ("err", "TypeError", "")
    return ("ok", result, bytes(out))


def TestOneInput(data: bytes) -> None:
    keys, out, args, wrong_kind = make_plan(data)
    c = run(C, keys, out, args)
    p = run(P, keys, out, args)
    assert c == p, f"C and Python twin differ on {args[0]}:\n  C:      {c!r}\n  Python: {p!r}\n  keys={keys!r}\n  args={args!r}"
    if c[:2] == ("err", "TypeError"):
        assert wrong_kind, f"TypeError without a wrong-kind argument: {args!r}"


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
