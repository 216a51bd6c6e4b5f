/*
 * pyquic/_crypto_pp.c.h: PacketProtection's methods, the per-packet hot path
 * (protect, protect_into, unprotect) and the calls that take many packets at
 * once (protect_batch, protect_stream_run, unprotect_batch: GSO and GRO
 * buffers).  Not compiled on its own: _crypto.c includes it where this
 * section stood, so it shares that file's static helpers, its rules (see the
 * header of _crypto.c) and its CryptoObject; the split only keeps each file
 * readable at one sitting.
 */

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
