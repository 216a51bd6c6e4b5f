/*
 * pyquic._crypto: QUIC packet protection (RFC 9001 §5) in C on OpenSSL's libcrypto.
 *
 * This file owns the per-packet hot path and nothing else: AEAD payload
 * protection (§5.3) for AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, header
 * protection (§5.4) with an AES-ECB or ChaCha20 mask, both together
 * (PacketProtection, with batch calls for GSO/GRO buffers) and packet number
 * decoding (RFC 9000 Appendix A.3).  This file is the Python face; the
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

/*
 * Threads.  Single calls never release the GIL while they use the contexts, so
 * the GIL serialises them.  A batch takes `lock` and keeps it while it runs
 * without the GIL with `busy` set; a single call that finds `busy` set waits
 * for the lock (without the GIL) before touching the contexts.  No Python code
 * can run while the lock is held (bytes objects are not GC-tracked, so
 * allocating them never triggers a collection), so a batch cannot re-enter.
 */
static void pp_acquire(CryptoObject *self) {
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

/* 1 when the lock was taken and must be released by the caller. */
static int pp_enter_single(CryptoObject *self) { return self->busy ? (pp_acquire(self), 1) : 0; }

/* Validates a plain header and payload for protection and returns the packet
 * number length, or -1 with CryptoError set.  §5.4.2: the sample starts 4 bytes
 * after the packet number starts, so payload + tag must hold 4 - pn_len + 16. */
static int check_protect(PyObject *error, const Py_buffer *hdr, Py_ssize_t plen, Py_ssize_t *total) {
    int pn_len = hdr->len < 1 ? 1 : (((const unsigned char *)hdr->buf)[0] & 0x03) + 1;
    if (hdr->len < 1 + pn_len)
        PyErr_Format(error, "header of %zd bytes is too short for a first byte and its %d-byte packet number", hdr->len,
                     pn_len);
    else if (plen < PN_MAX_LENGTH - pn_len)
        PyErr_Format(error, "payload of %zd bytes is too short to sample: at least %d needed", plen,
                     PN_MAX_LENGTH - pn_len);
    else if (plen > MAX_LEN - hdr->len)
        PyErr_SetString(error, "packet is too long");
    else {
        *total = hdr->len + plen + TAG_LENGTH;
        return pn_len;
    }
    return -1;
}

/* The header is copied to dst (memmove: it may already be there), the payload
 * sealed right after it with the plain header as AAD, then the header masked. */
static int pp_protect_raw(CryptoObject *self, const unsigned char *hdr, Py_ssize_t hlen, int pn_len,
                          const unsigned char *payload, Py_ssize_t plen, uint64_t pn, unsigned char *dst) {
    if (dst != hdr)
        memmove(dst, hdr, (size_t)hlen);
    return aead_seal_raw(&self->aead, pn, dst, hlen, payload, plen, dst + hlen) &&
           hp_apply_raw(&self->hp, dst, hlen - pn_len, pn_len);
}

static PyObject *protect_common(METHOD_ARGS, int into) {
    static const char *const names[] = {"out", "offset", "header", "payload", "packet_number"};
    PyObject *a[5], *result = NULL, *error = SELF->error;
    PyObject **in = into ? a + 2 : a; /* protect() takes the last three */
    Py_buffer out = {0}, hdr = {0}, pay = {0};
    long long offset = 0;
    uint64_t pn;
    Py_ssize_t total;
    int pn_len;
    unsigned char *dst, *tmp = NULL;
    if (parse_args(args, nargs, kwnames, into ? "protect_into" : "protect", into ? names : names + 2, into ? 5 : 3,
                   a) < 0 ||
        (into && parse_int(error, a[1], "offset", 0, PY_SSIZE_T_MAX, &offset) < 0) || parse_pn(error, in[2], &pn) < 0 ||
        (into && get_buffer(error, a[0], &out, 1, "out") < 0) || get_buffer(error, in[0], &hdr, 0, "header") < 0 ||
        get_buffer(error, in[1], &pay, 0, "payload") < 0 || (pn_len = check_protect(error, &hdr, pay.len, &total)) < 0)
        goto done;
    const unsigned char *payload = pay.buf;
    if (!into) {
        if ((result = new_bytes(total, &dst)) == NULL)
            goto done;
    } else {
        if (check_out(error, &out, offset, total) < 0)
            goto done;
        dst = (unsigned char *)out.buf + offset;
        /* Protecting in place (payload already right after the header in out) is
         * fine; a payload overlapping out anywhere else is copied away first.
         * The header may overlap anything: the memmove consumes it before any
         * byte after it is written. */
        if (payload != dst + hdr.len && overlaps(payload, pay.len, dst, total)) {
            if ((tmp = PyMem_Malloc((size_t)pay.len)) == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            payload = memcpy(tmp, payload, (size_t)pay.len);
        }
    }
    int locked = pp_enter_single(SELF);
    int ok = pp_protect_raw(SELF, hdr.buf, hdr.len, pn_len, payload, pay.len, pn, dst);
    if (locked)
        PyThread_release_lock(SELF->lock);
    if (!ok)
        FAIL_RESULT("packet protection failed");
    else if (into)
        result = PyLong_FromSsize_t(total);
done:
    PyMem_Free(tmp);
    RELEASE3(&out, &hdr, &pay);
    return result;
}

static PyObject *pp_protect(METHOD_ARGS) { return protect_common(op, args, nargs, kwnames, 0); }
static PyObject *pp_protect_into(METHOD_ARGS) { return protect_common(op, args, nargs, kwnames, 1); }

typedef struct {
    Py_buffer hdr, pay;
    uint64_t pn;
    int pn_len;
} protect_entry;

static PyObject *pp_protect_batch(METHOD_ARGS) {
    static const char *const names[] = {"packets"};
    PyObject *a[1], *seq, *result = NULL, *error = SELF->error;
    protect_entry *e = NULL;
    Py_ssize_t n = 0, i, sum = 0, total;
    unsigned char *out;
    if (parse_args(args, nargs, kwnames, "protect_batch", names, 1, a) < 0 || (seq = PySequence_Tuple(a[0])) == NULL)
        return NULL;
    n = PyTuple_Size(seq);
    if ((e = PyMem_Calloc((size_t)n + 1, sizeof(*e))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Validate everything first.  The buffers stay exported (so cannot be
     * resized) until the end, and the lengths found here are the ones used. */
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(seq, i);
        if (!PyTuple_Check(item) || PyTuple_Size(item) != 3) {
            PyErr_Format(PyExc_TypeError, "packets[%zd] must be a (header, payload, packet_number) tuple", i);
            goto done;
        }
        if (parse_pn(error, PyTuple_GetItem(item, 2), &e[i].pn) < 0 ||
            get_buffer(error, PyTuple_GetItem(item, 0), &e[i].hdr, 0, "header") < 0 ||
            get_buffer(error, PyTuple_GetItem(item, 1), &e[i].pay, 0, "payload") < 0 ||
            (e[i].pn_len = check_protect(error, &e[i].hdr, e[i].pay.len, &total)) < 0)
            goto done;
        if (total > MAX_LEN - sum) {
            PyErr_SetString(error, "batch is too long");
            goto done;
        }
        sum += total;
    }
    if ((result = new_bytes(sum, &out)) == NULL)
        goto done;
    int ok = 1;
    pp_acquire(SELF);
    SELF->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; ok && i < n; i++) {
        ok = pp_protect_raw(SELF, e[i].hdr.buf, e[i].hdr.len, e[i].pn_len, e[i].pay.buf, e[i].pay.len, e[i].pn, out);
        out += e[i].hdr.len + e[i].pay.len + TAG_LENGTH;
    }
    Py_END_ALLOW_THREADS
    SELF->busy = 0;
    PyThread_release_lock(SELF->lock);
    if (!ok)
        FAIL_RESULT("packet protection failed");
done:
    for (i = 0; e != NULL && i < n; i++) {
        release(&e[i].hdr);
        release(&e[i].pay);
    }
    PyMem_Free(e);
    Py_DECREF(seq);
    return result;
}

/* QUIC varint (RFC 9000 §16), minimal length; v < 2^62 (checked by callers). */
static int varint_len(uint64_t v) { return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8; }

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
    int n = varint_len(v);
    static const unsigned char prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xC0};
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xFF);
    p[0] |= prefix[n];
    return p + n;
}

typedef struct {
    Py_buffer data;
    uint64_t stream_id, offset;
    int fin;
    Py_ssize_t frame_len, payload_len; /* the STREAM frame; the payload with its padding */
} run_entry;

/* protect_stream_run(header_start, packet_number, frames, room, pad_below):
 * one 1-RTT packet per (stream_id, offset, data, fin) frame, numbered from
 * packet_number: the header is header_start (first byte, whose low bits give
 * the packet number length, and the DCID) and the truncated packet number;
 * the payload is the STREAM frame with offset (when not 0) and length
 * (RFC 9000 §19.8), zero-padded (PADDING frames) to `room` when it falls
 * short of it by less than pad_below, and to the 4 - pn_len bytes a sample
 * needs.  A frame longer than `room` is the caller's bug (CryptoError).
 * Returns (the protected packets back to back, their sizes). */
static PyObject *pp_protect_stream_run(METHOD_ARGS) {
    static const char *const names[] = {"header_start", "packet_number", "frames", "room", "pad_below"};
    PyObject *a[5], *seq = NULL, *buffer = NULL, *sizes = NULL, *result = NULL, *error = SELF->error;
    Py_buffer hs = {0};
    run_entry *e = NULL;
    Py_ssize_t n = 0, i, sum = 0, hlen;
    long long room, pad_below;
    uint64_t pn0;
    int pn_len;
    unsigned char *out;
    if (parse_args(args, nargs, kwnames, "protect_stream_run", names, 5, a) < 0 ||
        parse_pn(error, a[1], &pn0) < 0 || parse_int(error, a[3], "room", 0, MAX_LEN, &room) < 0 ||
        parse_int(error, a[4], "pad_below", 0, MAX_LEN, &pad_below) < 0 ||
        get_buffer(error, a[0], &hs, 0, "header_start") < 0 || (seq = PySequence_Tuple(a[2])) == NULL)
        goto done;
    n = PyTuple_Size(seq);
    pn_len = hs.len < 1 ? 1 : (((const unsigned char *)hs.buf)[0] & 0x03) + 1;
    hlen = hs.len + pn_len;
    if (hs.len < 1 || hs.len > 64) {
        PyErr_Format(error, "header_start of %zd bytes: a first byte and a connection ID are 1 to 64", hs.len);
        goto done;
    }
    if (n > 0 && pn0 + (uint64_t)(n - 1) >= PN_LIMIT) {
        PyErr_SetString(error, "packet numbers would reach 2^62");
        goto done;
    }
    if ((e = PyMem_Calloc((size_t)n + 1, sizeof(*e))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Everything is validated and measured first; the buffers stay exported
     * (so cannot be resized) until the end. */
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(seq, i);
        long long sid, off;
        int fin;
        if (!PyTuple_Check(item) || PyTuple_Size(item) != 4) {
            PyErr_Format(PyExc_TypeError, "frames[%zd] must be a (stream_id, offset, data, fin) tuple", i);
            goto done;
        }
        if (parse_int(error, PyTuple_GetItem(item, 0), "stream_id", 0, (long long)(PN_LIMIT - 1), &sid) < 0 ||
            parse_int(error, PyTuple_GetItem(item, 1), "offset", 0, (long long)(PN_LIMIT - 1), &off) < 0 ||
            (fin = PyObject_IsTrue(PyTuple_GetItem(item, 3))) < 0 ||
            get_buffer(error, PyTuple_GetItem(item, 2), &e[i].data, 0, "data") < 0)
            goto done;
        if ((uint64_t)e[i].data.len > PN_LIMIT - 1 - (uint64_t)off) {
            PyErr_SetString(error, "stream offset + length above 2^62 - 1");
            goto done;
        }
        e[i].stream_id = (uint64_t)sid;
        e[i].offset = (uint64_t)off;
        e[i].fin = fin;
        e[i].frame_len = 1 + varint_len(e[i].stream_id) + (off ? varint_len(e[i].offset) : 0) +
                         varint_len((uint64_t)e[i].data.len) + e[i].data.len;
        if (e[i].frame_len > room) {
            PyErr_Format(error, "frames[%zd]: a STREAM frame of %zd bytes does not fit in %lld", i, e[i].frame_len, room);
            goto done;
        }
        Py_ssize_t len = e[i].frame_len, shortfall = (Py_ssize_t)room - len;
        if (shortfall > 0 && shortfall < pad_below)
            len = (Py_ssize_t)room;
        if (len < PN_MAX_LENGTH - pn_len)
            len = PN_MAX_LENGTH - pn_len;
        e[i].payload_len = len;
        if (hlen + len + TAG_LENGTH > MAX_LEN - sum) {
            PyErr_SetString(error, "run is too long");
            goto done;
        }
        sum += hlen + len + TAG_LENGTH;
    }
    if ((sizes = PyTuple_New(n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *size = PyLong_FromSsize_t(hlen + e[i].payload_len + TAG_LENGTH);
        if (size == NULL)
            goto done;
        PyTuple_SetItem(sizes, i, size); /* steals; cannot fail on a new tuple */
    }
    if ((buffer = new_bytes(sum, &out)) == NULL)
        goto done;
    int ok = 1;
    pp_acquire(SELF);
    SELF->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; ok && i < n; i++) {
        uint64_t pn = pn0 + (uint64_t)i;
        unsigned char *p = out;
        memcpy(p, hs.buf, (size_t)hs.len);
        p += hs.len;
        for (int k = pn_len - 1; k >= 0; k--)
            *p++ = (unsigned char)(pn >> (8 * k));
        unsigned char *payload = p;
        *p++ = (unsigned char)(0x08 | (e[i].offset ? 0x04 : 0) | 0x02 | (e[i].fin ? 0x01 : 0));
        p = put_varint(p, e[i].stream_id);
        if (e[i].offset)
            p = put_varint(p, e[i].offset);
        p = put_varint(p, (uint64_t)e[i].data.len);
        memcpy(p, e[i].data.buf, (size_t)e[i].data.len);
        p += e[i].data.len;
        memset(p, 0, (size_t)(e[i].payload_len - e[i].frame_len)); /* payload_len >= frame_len */
        ok = aead_seal_raw(&SELF->aead, pn, out, hlen, payload, e[i].payload_len, payload) &&
             hp_apply_raw(&SELF->hp, out, hs.len, pn_len);
        out += hlen + e[i].payload_len + TAG_LENGTH;
    }
    Py_END_ALLOW_THREADS
    SELF->busy = 0;
    PyThread_release_lock(SELF->lock);
    if (!ok)
        FAIL_RESULT("packet protection failed");
    else
        result = PyTuple_Pack(2, buffer, sizes);
done:
    for (i = 0; e != NULL && i < n; i++)
        release(&e[i].data);
    PyMem_Free(e);
    release(&hs);
    Py_XDECREF(seq);
    Py_XDECREF(buffer);
    Py_XDECREF(sizes);
    return result;
}

typedef struct {
    Py_ssize_t offset, length, pn_offset;
    PyObject *hdr, *pay;                /* owned until moved into the result */
    unsigned char *hdr_data, *pay_data; /* their contents, for use without the GIL */
    uint64_t truncated, pn;
    int pn_len;
    int state; /* 0: None; 1: header unmasked, to open; 2: opened */
} open_entry;

/* Header protection removal into a new header bytes object, and allocation of
 * the payload.  Runs under the GIL; no Python code can run here. */
static int unprotect_prepare(CryptoObject *self, const unsigned char *pkt, open_entry *e) {
    unsigned char mask[2 * SAMPLE_LENGTH];
    if (!hp_peek(&self->hp, pkt, e->pn_offset, mask, &e->pn_len)) {
        crypto_fail(self->error, "header protection failed");
        return -1;
    }
    Py_ssize_t hlen = e->pn_offset + e->pn_len;
    if ((e->hdr = new_bytes(hlen, &e->hdr_data)) == NULL)
        return -1;
    memcpy(e->hdr_data, pkt, (size_t)hlen);
    e->truncated = hp_unmask(e->hdr_data, e->pn_offset, e->pn_len, mask);
    /* length >= pn_offset + 4 + 16 and pn_len <= 4, so this is >= 0 */
    if ((e->pay = new_bytes(e->length - hlen - TAG_LENGTH, &e->pay_data)) == NULL)
        return -1;
    e->state = 1;
    return 0;
}

/* Decode the packet number (RFC 9000 A.3) and open; needs no GIL. */
static void unprotect_open(CryptoObject *self, const unsigned char *pkt, open_entry *e, long long *largest_pn) {
    Py_ssize_t hlen = e->pn_offset + e->pn_len;
    e->pn = decode_pn(e->truncated, 8 * e->pn_len, *largest_pn);
    if (aead_open_raw(&self->aead, e->pn, e->hdr_data, hlen, pkt + hlen, e->length - hlen, e->pay_data)) {
        e->state = 2;
        if ((long long)e->pn > *largest_pn)
            *largest_pn = (long long)e->pn;
    } else {
        e->state = 0;
        ERR_clear_error();
    }
}

/* (header, payload, pn) for an opened entry; takes its references. */
static PyObject *entry_result(open_entry *e) {
    PyObject *t = Py_BuildValue("(NNK)", e->hdr, e->pay, (unsigned long long)e->pn);
    e->hdr = e->pay = NULL; /* "N" consumed them, even on failure */
    return t;
}

static PyObject *pp_unprotect(METHOD_ARGS) {
    static const char *const names[] = {"packet", "pn_offset", "largest_pn"};
    PyObject *a[3], *result = NULL, *error = SELF->error;
    Py_buffer pkt = {0};
    long long pn_offset, largest_pn;
    open_entry e = {0};
    if (parse_args(args, nargs, kwnames, "unprotect", names, 3, a) < 0 ||
        parse_int(error, a[1], "pn_offset", 1, LLONG_MAX, &pn_offset) < 0 ||
        parse_int(error, a[2], "largest_pn", -1, (long long)(PN_LIMIT - 1), &largest_pn) < 0 ||
        get_buffer(error, a[0], &pkt, 0, "packet") < 0 || check_sample(error, pkt.len, pn_offset) < 0)
        goto done;
    e.length = pkt.len;
    e.pn_offset = (Py_ssize_t)pn_offset;
    int locked = pp_enter_single(SELF);
    if (unprotect_prepare(SELF, pkt.buf, &e) == 0)
        unprotect_open(SELF, pkt.buf, &e, &largest_pn);
    if (locked)
        PyThread_release_lock(SELF->lock);
    if (e.state == 2)
        result = entry_result(&e);
    else if (!PyErr_Occurred())
        PyErr_SetString(error, "packet authentication failed");
done:
    Py_XDECREF(e.hdr);
    Py_XDECREF(e.pay);
    release(&pkt);
    return result;
}

static PyObject *pp_unprotect_batch(METHOD_ARGS) {
    static const char *const names[] = {"buffer", "segments", "largest_pn"};
    PyObject *a[3], *seq, *result = NULL, *error = SELF->error;
    Py_buffer buf = {0};
    long long largest_pn, v[3];
    open_entry *e = NULL;
    Py_ssize_t n = 0, i;
    if (parse_args(args, nargs, kwnames, "unprotect_batch", names, 3, a) < 0 ||
        parse_int(error, a[2], "largest_pn", -1, (long long)(PN_LIMIT - 1), &largest_pn) < 0 ||
        (seq = PySequence_Tuple(a[1])) == NULL)
        return NULL;
    if (get_buffer(error, a[0], &buf, 0, "buffer") < 0)
        goto done;
    n = PyTuple_Size(seq);
    if ((e = PyMem_Calloc((size_t)n + 1, sizeof(*e))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* A segment outside the buffer is the caller's bug and fails the whole call;
     * a packet too short to sample is the peer's problem and yields None. */
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(seq, i);
        if (!PyTuple_Check(item) || PyTuple_Size(item) != 3) {
            PyErr_Format(PyExc_TypeError, "segments[%zd] must be an (offset, length, pn_offset) tuple", i);
            goto done;
        }
        if (parse_int(error, PyTuple_GetItem(item, 0), "segment offset", 0, buf.len, &v[0]) < 0 ||
            parse_int(error, PyTuple_GetItem(item, 1), "segment length", 0, buf.len - v[0], &v[1]) < 0 ||
            parse_int(error, PyTuple_GetItem(item, 2), "segment pn_offset", 1, LLONG_MAX, &v[2]) < 0)
            goto done;
        e[i].offset = (Py_ssize_t)v[0];
        e[i].length = (Py_ssize_t)v[1];
        e[i].state = e[i].length >= PN_MAX_LENGTH + SAMPLE_LENGTH &&
                     v[2] <= (long long)(e[i].length - PN_MAX_LENGTH - SAMPLE_LENGTH);
        e[i].pn_offset = e[i].state ? (Py_ssize_t)v[2] : 0;
    }
    const unsigned char *base = buf.buf;
    pp_acquire(SELF);
    for (i = 0; i < n; i++)
        if (e[i].state && unprotect_prepare(SELF, base + e[i].offset, &e[i]) < 0)
            break;
    if (i == n) {
        SELF->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        for (i = 0; i < n; i++)
            if (e[i].state)
                unprotect_open(SELF, base + e[i].offset, &e[i], &largest_pn);
        Py_END_ALLOW_THREADS
        SELF->busy = 0;
    }
    PyThread_release_lock(SELF->lock);
    if (PyErr_Occurred() || (result = PyList_New(n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *r = e[i].state == 2 ? entry_result(&e[i]) : Py_NewRef(Py_None);
        if (r == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SetItem(result, i, r); /* steals */
    }
done:
    for (i = 0; e != NULL && i < n; i++) {
        Py_XDECREF(e[i].hdr);
        Py_XDECREF(e[i].pay);
    }
    PyMem_Free(e);
    release(&buf);
    Py_DECREF(seq);
    return result;
}

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
