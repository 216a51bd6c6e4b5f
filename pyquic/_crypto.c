/*
 * pyquic._crypto: QUIC packet protection (RFC 9001 §5) in C on OpenSSL's libcrypto.
 *
 * This file owns the per-packet hot path and nothing else: AEAD payload
 * protection (§5.3) for AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, header
 * protection (§5.4) with an AES-ECB or ChaCha20 mask, both together
 * (PacketProtection, with batch calls for GSO/GRO buffers) and packet number
 * decoding (RFC 9000 Appendix A.3).  This file is the Python face (with
 * PacketProtection's methods in _crypto_pp.c.h, which it includes); the
 * OpenSSL calls themselves are in _crypto_core.c (no Python there).  Key
 * derivation lives in pyquic/crypto.py.
 * The API is pyquic/_crypto.pyi; pyquic/_crypto_py.py is the pure-Python twin
 * and must behave identically (tests/test_crypto_properties.py checks parity).
 *
 * Rules kept here:
 *  - Stable ABI (Py_LIMITED_API 3.11): heap types, buffers only through
 *    PyObject_GetBuffer, bytes results filled through PyBytes_AsString.
 *  - Every length and offset is checked before memory is touched.  A bad value
 *    raises CryptoError (a ValueError); a wrong Python type raises TypeError.
 *  - Each object sets cipher and key on its EVP contexts once; a packet only
 *    re-initialises the nonce.  Nothing is allocated per packet but the results.
 *  - No mutable global state: CryptoError lives in module state, and each
 *    object keeps a strong reference to it.
 *  - Only PacketProtection's batch calls release the GIL (see pp_acquire).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "_crypto_core.h"

/* EVP takes int lengths: every input, and a packet with its tag, stays below INT_MAX. */
#define MAX_LEN ((Py_ssize_t)INT_MAX - 64)

static const suite_info SUITES[] = {
    {0x1301, "AES-128-GCM", "AES-128-ECB", 16, 1LL << 23, 1LL << 52},
    {0x1302, "AES-256-GCM", "AES-256-ECB", 32, 1LL << 23, 1LL << 52},
    {0x1303, "ChaCha20-Poly1305", "ChaCha20", 32, 1LL << 62, 1LL << 36},
};

typedef struct {
    PyObject *error; /* CryptoError */
    PyTypeObject *types[3];
} module_state;

/* ------------------------------------------------------------------ helpers */

/* Arguments of a METH_FASTCALL|METH_KEYWORDS method, all required. */
static int parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fname,
                      const char *const *names, int n, PyObject **out) {
    Py_ssize_t nk = kwnames == NULL ? 0 : PyTuple_Size(kwnames);
    if (nargs > n)
        return PyErr_Format(PyExc_TypeError, "%s() takes %d arguments (%zd given)", fname, n, nargs), -1;
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *key = PyTuple_GetItem(kwnames, k);
        int j = 0;
        while (j < n && PyUnicode_CompareWithASCIIString(key, names[j]) != 0)
            j++;
        if (j == n || out[j] != NULL)
            return PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated argument %R", fname, key), -1;
        out[j] = args[nargs + k];
    }
    for (int i = 0; i < n; i++)
        if (out[i] == NULL)
            return PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]), -1;
    return 0;
}

/* An int in [lo, hi]: TypeError if `o` is not an int, CryptoError if out of range. */
static int parse_int(PyObject *error, PyObject *o, const char *name, long long lo, long long hi, long long *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && !overflow && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi)
        return PyErr_Format(error, "%s must be between %lld and %lld", name, lo, hi), -1;
    *out = v;
    return 0;
}

static int parse_pn(PyObject *error, PyObject *o, uint64_t *pn) {
    long long v = 0;
    int r = parse_int(error, o, "packet_number", 0, (long long)(PN_LIMIT - 1), &v);
    *pn = (uint64_t)v;
    return r;
}

/* A contiguous buffer.  Not a buffer at all -> TypeError (from Python); a buffer
 * we cannot use (read-only when writing, not contiguous, too long) -> CryptoError. */
static int get_buffer(PyObject *error, PyObject *o, Py_buffer *view, int writable, const char *name) {
    if (PyObject_GetBuffer(o, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) == 0) {
        if (view->len <= MAX_LEN)
            return 0;
        PyBuffer_Release(view);
        PyErr_Format(error, "%s is too long", name);
    } else if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        PyErr_Format(error, "%s must be a %scontiguous buffer", name, writable ? "writable " : "");
    }
    view->obj = NULL; /* so that release() is a no-op */
    return -1;
}

static void release(Py_buffer *view) {
    if (view->obj != NULL)
        PyBuffer_Release(view);
    view->obj = NULL;
}

#define RELEASE3(a, b, c) (release(a), release(b), release(c))

static const suite_info *parse_suite(PyObject *error, PyObject *o) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && !overflow && PyErr_Occurred())
        return NULL;
    for (size_t i = 0; !overflow && i < sizeof(SUITES) / sizeof(SUITES[0]); i++)
        if (SUITES[i].suite == v)
            return &SUITES[i];
    PyErr_Format(error, "unsupported cipher suite %R", o);
    return NULL;
}

static int check_len(PyObject *error, const char *name, Py_ssize_t got, int want) {
    return got == want ? 0 : (PyErr_Format(error, "%s must be %d bytes, got %zd", name, want, got), -1);
}

/* `out` must hold n bytes from offset (offset is already known to be >= 0). */
static int check_out(PyObject *error, const Py_buffer *out, long long offset, Py_ssize_t n) {
    if (offset <= (long long)out->len && n <= out->len - (Py_ssize_t)offset)
        return 0;
    PyErr_Format(error, "out is too small: %zd bytes needed at offset %lld, %zd available", n, offset,
                 offset > (long long)out->len ? (Py_ssize_t)0 : out->len - (Py_ssize_t)offset);
    return -1;
}

/* True when [a, a+alen) and [b, b+blen) share a byte. */
static int overlaps(const void *a, Py_ssize_t alen, const void *b, Py_ssize_t blen) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen > 0 && blen > 0 && x < y + (uintptr_t)blen && y < x + (uintptr_t)alen;
}

/* Drop a half-built `result` and raise CryptoError (needs `result` and `error`). */
#define FAIL_RESULT(msg)                \
    do {                                \
        Py_CLEAR(result);               \
        crypto_fail(error, (msg));      \
    } while (0)

/* Raise CryptoError after a libcrypto failure, emptying OpenSSL's error queue so
 * that no stale entry confuses the next libcrypto user in this thread. */
static void *crypto_fail(PyObject *error, const char *msg) {
    ERR_clear_error();
    PyErr_SetString(error, msg);
    return NULL;
}

static PyObject *new_bytes(Py_ssize_t n, unsigned char **data) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, n);
    if (b != NULL)
        *data = (unsigned char *)PyBytes_AsString(b);
    return b;
}

/* §5.4.2: the sample is 16 bytes from pn_offset + 4.  pn_offset >= 1 was parsed;
 * written as a subtraction so that a huge pn_offset cannot overflow. */
static int check_sample(PyObject *error, Py_ssize_t len, long long pn_offset) {
    if (len >= PN_MAX_LENGTH + SAMPLE_LENGTH && pn_offset <= (long long)(len - PN_MAX_LENGTH - SAMPLE_LENGTH))
        return 0;
    PyErr_Format(error, "packet of %zd bytes is too short to sample at pn_offset %lld", len, pn_offset);
    return -1;
}

/* ------------------------------------------------------------------ objects */

/* One layout for the three types: AEAD uses `aead`, HeaderProtection `hp`,
 * PacketProtection both plus the batch lock. */
typedef struct {
    PyObject_HEAD
    PyObject *error;
    const suite_info *info;
    aead_core aead;
    hp_core hp;
    PyThread_type_lock lock; /* PacketProtection: held by a batch call for its whole run */
    int busy;                /* set, under the GIL, while a batch runs without the GIL */
} CryptoObject;

enum { K_AEAD = 1, K_HP = 2, K_PP = 3 };

static PyObject *construct(PyTypeObject *type, PyObject *args, PyObject *kwds, int kind) {
    static char *aead_kw[] = {"cipher_suite", "key", "iv", NULL};
    static char *hp_kw[] = {"cipher_suite", "hp_key", NULL};
    static char *pp_kw[] = {"cipher_suite", "key", "iv", "hp_key", NULL};
    PyObject *o[4] = {NULL, NULL, NULL, NULL};
    Py_buffer key = {0}, iv = {0}, hp = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds,
                                     kind == K_AEAD ? "OOO:AEAD" : kind == K_HP ? "OO:HeaderProtection"
                                                                                : "OOOO:PacketProtection",
                                     kind == K_AEAD ? aead_kw : kind == K_HP ? hp_kw : pp_kw, &o[0], &o[1], &o[2],
                                     &o[3]))
        return NULL;
    PyObject *mod = PyType_GetModule(type); /* types are final, so this is our module */
    if (mod == NULL)
        return NULL;
    CryptoObject *self = (CryptoObject *)((allocfunc)PyType_GetSlot(type, Py_tp_alloc))(type, 0);
    if (self == NULL)
        return NULL;
    PyObject *error = self->error = Py_NewRef(((module_state *)PyModule_GetState(mod))->error);
    PyObject *hp_o = kind == K_HP ? o[1] : o[3];
    /* Same order of checks as the Python twin: buffers, then lengths. */
    if ((self->info = parse_suite(error, o[0])) == NULL ||
        ((kind & K_AEAD) && (get_buffer(error, o[1], &key, 0, "key") < 0 || get_buffer(error, o[2], &iv, 0, "iv") < 0)) ||
        ((kind & K_HP) && get_buffer(error, hp_o, &hp, 0, "hp_key") < 0) ||
        ((kind & K_AEAD) && check_len(error, "key", key.len, self->info->key_length) < 0) ||
        ((kind & K_HP) && check_len(error, "hp_key", hp.len, self->info->key_length) < 0) ||
        ((kind & K_AEAD) && check_len(error, "iv", iv.len, IV_LENGTH) < 0))
        goto fail;
    if (kind == K_PP && (self->lock = PyThread_allocate_lock()) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (((kind & K_AEAD) && !aead_init(&self->aead, self->info, key.buf, iv.buf)) ||
        ((kind & K_HP) && !hp_init(&self->hp, self->info, hp.buf))) {
        crypto_fail(error, "cannot initialise the cipher contexts");
        goto fail;
    }
    RELEASE3(&key, &iv, &hp);
    return (PyObject *)self;
fail:
    RELEASE3(&key, &iv, &hp);
    Py_DECREF(self);
    return NULL;
}

static PyObject *aead_new(PyTypeObject *t, PyObject *a, PyObject *k) { return construct(t, a, k, K_AEAD); }
static PyObject *hp_new(PyTypeObject *t, PyObject *a, PyObject *k) { return construct(t, a, k, K_HP); }
static PyObject *pp_new(PyTypeObject *t, PyObject *a, PyObject *k) { return construct(t, a, k, K_PP); }

static void dealloc(PyObject *op) {
    CryptoObject *self = (CryptoObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    aead_clear(&self->aead);
    EVP_CIPHER_CTX_free(self->hp.ctx); /* cleanses the hp key schedule */
    if (self->lock != NULL)
        PyThread_free_lock(self->lock);
    Py_CLEAR(self->error);
    ((freefunc)PyType_GetSlot(type, Py_tp_free))(op);
    Py_DECREF(type); /* instances of heap types own a reference to their type */
}

static PyObject *get_attr(PyObject *op, void *which) {
    const suite_info *info = ((CryptoObject *)op)->info;
    long long values[] = {info->suite, TAG_LENGTH, info->confidentiality_limit, info->integrity_limit};
    return PyLong_FromLongLong(values[(intptr_t)which]);
}

/* cipher_suite comes last so that aead_getset + 3 is HeaderProtection's table. */
static PyGetSetDef aead_getset[] = {
    {"tag_length", get_attr, NULL, "AEAD tag length (16).", (void *)1},
    {"confidentiality_limit", get_attr, NULL, "RFC 9001 §6.6: packets that may be sealed.", (void *)2},
    {"integrity_limit", get_attr, NULL, "RFC 9001 §6.6: forgery attempts tolerated.", (void *)3},
    {"cipher_suite", get_attr, NULL, "TLS code point of the cipher suite.", (void *)0},
    {NULL, NULL, NULL, NULL, NULL},
};

#define METHOD_ARGS PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames
#define SELF ((CryptoObject *)op)

/* --------------------------------------------------------------------- AEAD */

static PyObject *seal_common(METHOD_ARGS, int into) {
    static const char *const names[] = {"out", "offset", "packet_number", "associated_data", "plaintext"};
    PyObject *a[5], *result = NULL, *error = SELF->error;
    PyObject **in = into ? a + 2 : a; /* seal() takes the last three */
    Py_buffer out = {0}, aad = {0}, pt = {0};
    long long offset = 0;
    uint64_t pn;
    unsigned char *dst, *tmp = NULL;
    if (parse_args(args, nargs, kwnames, into ? "seal_into" : "seal", into ? names : names + 2, into ? 5 : 3, a) < 0 ||
        (into && parse_int(error, a[1], "offset", 0, PY_SSIZE_T_MAX, &offset) < 0) || parse_pn(error, in[0], &pn) < 0 ||
        (into && get_buffer(error, a[0], &out, 1, "out") < 0) ||
        get_buffer(error, in[1], &aad, 0, "associated_data") < 0 || get_buffer(error, in[2], &pt, 0, "plaintext") < 0)
        goto done;
    Py_ssize_t n = pt.len + TAG_LENGTH;
    const unsigned char *src = pt.buf, *ad = aad.buf;
    if (!into) {
        if ((result = new_bytes(n, &dst)) == NULL)
            goto done;
    } else {
        if (check_out(error, &out, offset, n) < 0)
            goto done;
        dst = (unsigned char *)out.buf + offset;
        /* Sealing in place (plaintext exactly at dst) is fine; any other overlap
         * of an input with the bytes written is copied away first. */
        int copy_pt = src != dst && overlaps(src, pt.len, dst, n), copy_ad = overlaps(ad, aad.len, dst, n);
        if ((copy_pt || copy_ad) && (tmp = PyMem_Malloc((size_t)(pt.len + aad.len) + 1)) == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        if (copy_pt)
            src = memcpy(tmp, src, (size_t)pt.len);
        if (copy_ad)
            ad = memcpy(tmp + pt.len, ad, (size_t)aad.len);
    }
    if (!aead_seal_raw(&SELF->aead, pn, ad, aad.len, src, pt.len, dst))
        FAIL_RESULT("encryption failed");
    else if (into)
        result = PyLong_FromSsize_t(n);
done:
    PyMem_Free(tmp);
    RELEASE3(&out, &aad, &pt);
    return result;
}

static PyObject *aead_seal(METHOD_ARGS) { return seal_common(op, args, nargs, kwnames, 0); }
static PyObject *aead_seal_into(METHOD_ARGS) { return seal_common(op, args, nargs, kwnames, 1); }

static PyObject *aead_open(METHOD_ARGS) {
    static const char *const names[] = {"packet_number", "associated_data", "ciphertext"};
    PyObject *a[3], *result = NULL, *error = SELF->error;
    Py_buffer aad = {0}, ct = {0};
    uint64_t pn;
    unsigned char *out;
    if (parse_args(args, nargs, kwnames, "open", names, 3, a) < 0 || parse_pn(error, a[0], &pn) < 0 ||
        get_buffer(error, a[1], &aad, 0, "associated_data") < 0 || get_buffer(error, a[2], &ct, 0, "ciphertext") < 0)
        goto done;
    if (ct.len < TAG_LENGTH) {
        PyErr_Format(error, "ciphertext of %zd bytes is shorter than the %d-byte tag", ct.len, TAG_LENGTH);
        goto done;
    }
    if ((result = new_bytes(ct.len - TAG_LENGTH, &out)) != NULL &&
        !aead_open_raw(&SELF->aead, pn, aad.buf, aad.len, ct.buf, ct.len, out))
        FAIL_RESULT("authentication failed");
done:
    release(&aad);
    release(&ct);
    return result;
}

/* --------------------------------------------------------- HeaderProtection */

static PyObject *hp_mask_method(METHOD_ARGS) {
    static const char *const names[] = {"sample"};
    PyObject *a[1], *result = NULL;
    Py_buffer sample = {0};
    unsigned char mask[2 * SAMPLE_LENGTH];
    if (parse_args(args, nargs, kwnames, "mask", names, 1, a) < 0 ||
        get_buffer(SELF->error, a[0], &sample, 0, "sample") < 0 ||
        check_len(SELF->error, "sample", sample.len, SAMPLE_LENGTH) < 0)
        goto done;
    if (!hp_mask(&SELF->hp, sample.buf, mask))
        crypto_fail(SELF->error, "header protection failed");
    else
        result = PyBytes_FromStringAndSize((const char *)mask, 5);
done:
    release(&sample);
    return result;
}

static PyObject *hp_apply_or_remove(METHOD_ARGS, int remove) {
    static const char *const names[] = {"packet", "pn_offset"};
    PyObject *a[2], *result = NULL, *error = SELF->error;
    Py_buffer pkt = {0};
    long long pn_offset;
    unsigned char mask[2 * SAMPLE_LENGTH], *out;
    int pn_len, ok;
    if (parse_args(args, nargs, kwnames, remove ? "remove" : "apply", names, 2, a) < 0 ||
        parse_int(error, a[1], "pn_offset", 1, LLONG_MAX, &pn_offset) < 0 ||
        get_buffer(error, a[0], &pkt, 0, "packet") < 0 || check_sample(error, pkt.len, pn_offset) < 0)
        goto done;
    if (!remove) { /* a protected copy of the whole packet */
        if ((result = new_bytes(pkt.len, &out)) == NULL)
            goto done;
        memcpy(out, pkt.buf, (size_t)pkt.len);
        ok = hp_apply_raw(&SELF->hp, out, (Py_ssize_t)pn_offset, (out[0] & 0x03) + 1);
    } else if ((ok = hp_peek(&SELF->hp, pkt.buf, (Py_ssize_t)pn_offset, mask, &pn_len))) {
        PyObject *header = new_bytes((Py_ssize_t)pn_offset + pn_len, &out);
        if (header == NULL)
            goto done;
        memcpy(out, pkt.buf, (size_t)pn_offset + (size_t)pn_len);
        uint64_t truncated = hp_unmask(out, (Py_ssize_t)pn_offset, pn_len, mask);
        result = Py_BuildValue("(NK)", header, (unsigned long long)truncated);
    }
    if (!ok)
        FAIL_RESULT("header protection failed");
done:
    release(&pkt);
    return result;
}

static PyObject *hp_apply(METHOD_ARGS) { return hp_apply_or_remove(op, args, nargs, kwnames, 0); }
static PyObject *hp_remove(METHOD_ARGS) { return hp_apply_or_remove(op, args, nargs, kwnames, 1); }

/* --------------------------------------------------------- PacketProtection */

#include "_crypto_pp.c.h"

/* ------------------------------------------------------------------- module */

static PyObject *decode_packet_number(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"truncated", "pn_length", "largest_pn"};
    PyObject *error = ((module_state *)PyModule_GetState(module))->error, *a[3];
    long long truncated, pn_length, largest_pn;
    if (parse_args(args, nargs, kwnames, "decode_packet_number", names, 3, a) < 0 ||
        parse_int(error, a[1], "pn_length", 1, PN_MAX_LENGTH, &pn_length) < 0 ||
        parse_int(error, a[0], "truncated", 0, (1LL << (8 * pn_length)) - 1, &truncated) < 0 ||
        parse_int(error, a[2], "largest_pn", -1, (long long)(PN_LIMIT - 1), &largest_pn) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(decode_pn((uint64_t)truncated, 8 * (int)pn_length, largest_pn));
}

#define FASTKW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef aead_methods[] = {
    {"seal", FASTKW(aead_seal), "seal(packet_number, associated_data, plaintext) -> ciphertext || tag"},
    {"seal_into", FASTKW(aead_seal_into), "seal_into(out, offset, packet_number, associated_data, plaintext) -> int"},
    {"open", FASTKW(aead_open), "open(packet_number, associated_data, ciphertext) -> plaintext"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef hp_methods[] = {
    {"mask", FASTKW(hp_mask_method), "mask(sample) -> the 5-byte mask"},
    {"apply", FASTKW(hp_apply), "apply(packet, pn_offset) -> protected copy"},
    {"remove", FASTKW(hp_remove), "remove(packet, pn_offset) -> (plain header, truncated packet number)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef pp_methods[] = {
    {"protect", FASTKW(pp_protect), "protect(header, payload, packet_number) -> protected packet"},
    {"protect_into", FASTKW(pp_protect_into), "protect_into(out, offset, header, payload, packet_number) -> int"},
    {"protect_batch", FASTKW(pp_protect_batch), "protect_batch([(header, payload, packet_number), ...]) -> bytes"},
    {"protect_stream_run", FASTKW(pp_protect_stream_run),
     "protect_stream_run(header_start, packet_number, [(stream_id, offset, data, fin), ...], room, pad_below)"
     " -> (packets, sizes)"},
    {"unprotect", FASTKW(pp_unprotect), "unprotect(packet, pn_offset, largest_pn) -> (header, payload, pn)"},
    {"unprotect_batch", FASTKW(pp_unprotect_batch),
     "unprotect_batch(buffer, [(offset, length, pn_offset), ...], largest_pn) -> [result or None, ...]"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef module_methods[] = {
    {"decode_packet_number", FASTKW(decode_packet_number),
     "decode_packet_number(truncated, pn_length, largest_pn) -> int (RFC 9000 A.3; pn_length in bytes)"},
    {NULL, NULL, 0, NULL},
};

#define SLOTS(name, newfunc, methods, getset, doc)                                                                   \
    static PyType_Slot name[] = {{Py_tp_new, newfunc}, {Py_tp_dealloc, dealloc},  {Py_tp_methods, methods},          \
                                 {Py_tp_getset, getset}, {Py_tp_doc, doc},        {0, NULL}}

SLOTS(aead_slots, aead_new, aead_methods, aead_getset, "AEAD(cipher_suite, key, iv): payload protection, RFC 9001 §5.3.");
SLOTS(hp_slots, hp_new, hp_methods, aead_getset + 3,
      "HeaderProtection(cipher_suite, hp_key): RFC 9001 §5.4.");
SLOTS(pp_slots, pp_new, pp_methods, aead_getset,
      "PacketProtection(cipher_suite, key, iv, hp_key): AEAD and header protection together.");

/* Final (no Py_TPFLAGS_BASETYPE), so PyType_GetModule(type) in construct() is ours. */
static PyType_Spec specs[] = {
    {"pyquic._crypto.AEAD", sizeof(CryptoObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, aead_slots},
    {"pyquic._crypto.HeaderProtection", sizeof(CryptoObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
     hp_slots},
    {"pyquic._crypto.PacketProtection", sizeof(CryptoObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
     pp_slots},
};

static int module_exec(PyObject *m) {
    module_state *st = PyModule_GetState(m);
    st->error = PyErr_NewExceptionWithDoc("pyquic._crypto.CryptoError",
                                          "Malformed input or failed authentication in packet protection.",
                                          PyExc_ValueError, NULL);
    if (st->error == NULL || PyModule_AddObjectRef(m, "CryptoError", st->error) < 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        st->types[i] = (PyTypeObject *)PyType_FromModuleAndSpec(m, &specs[i], NULL);
        if (st->types[i] == NULL || PyModule_AddType(m, st->types[i]) < 0)
            return -1;
    }
    if (PyModule_AddIntConstant(m, "AES_128_GCM", 0x1301) < 0 ||
        PyModule_AddIntConstant(m, "AES_256_GCM", 0x1302) < 0 ||
        PyModule_AddIntConstant(m, "CHACHA20_POLY1305", 0x1303) < 0 ||
        PyModule_AddIntConstant(m, "TAG_LENGTH", TAG_LENGTH) < 0 ||
        PyModule_AddIntConstant(m, "SAMPLE_LENGTH", SAMPLE_LENGTH) < 0 ||
        PyModule_AddIntConstant(m, "IV_LENGTH", IV_LENGTH) < 0 ||
        PyModule_AddStringConstant(m, "IMPLEMENTATION", "c") < 0 ||
        PyModule_AddStringConstant(m, "OPENSSL_VERSION", OpenSSL_version(OPENSSL_VERSION)) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    module_state *st = PyModule_GetState(m);
    Py_VISIT(st->error);
    Py_VISIT(st->types[0]);
    Py_VISIT(st->types[1]);
    Py_VISIT(st->types[2]);
    return 0;
}

static int module_clear(PyObject *m) {
    module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->error);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(st->types[i]);
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyquic._crypto",
    .m_doc = "QUIC packet protection (RFC 9001 §5) on OpenSSL's libcrypto.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__crypto(void) { return PyModuleDef_Init(&module_def); }
