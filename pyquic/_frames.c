/*
 * pyquic._frames: the receive path's frame parser in C, for the frames a
 * packet carries most (RFC 9000 §19): PADDING, PING, ACK, CRYPTO, STREAM,
 * MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS and HANDSHAKE_DONE.
 *
 * This file owns one decision only: "can this payload be parsed quickly".
 * parse() returns the same ParsedPayload that pyquic.frames.parse_frames_py
 * (the pure-Python twin) returns for the payload, or None whenever anything
 * is unusual: a frame type outside the set above, a frame type the packet
 * type does not allow, a truncated or malformed frame, a value out of range.
 * The caller then runs the twin, which decides what the error is (which
 * TransportError, which frame type).  So every protocol decision stays in
 * Python, and C never has to agree on an error, only on a success
 * (tests/test_quic_frames_c.py checks that over generated and mutated
 * payloads).
 *
 * Rules kept here:
 *  - Stable ABI (Py_LIMITED_API 3.11).  Frames are instances of the
 *    NamedTuple classes of pyquic/frames.py, made as tuple.__new__ makes
 *    them (the type's tp_alloc, then the items); bind() hands over the
 *    classes and the two shared field-less frames, once per module object.
 *  - Every read is checked against the payload's end before it happens.
 *  - No global state: the classes live in module state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define MAX_OFFSET ((UINT64_C(1) << 62) - 1)   /* RFC 9000 §19.6, §19.8 */
#define MAX_STREAMS_LIMIT (UINT64_C(1) << 60)  /* RFC 9000 §19.11 */
#define ALLOWED_LENGTH 64                       /* one flag per one-byte frame type */

enum { PADDING, ACK, CRYPTO, STREAM, MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS, PARSED, N_CLASSES };
static const char *const class_names[N_CLASSES] = {
    "Padding", "Ack", "Crypto", "Stream", "MaxData", "MaxStreamData", "MaxStreams", "ParsedPayload",
};

typedef struct {
    PyObject *cls[N_CLASSES];
    allocfunc alloc[N_CLASSES];
    PyObject *ping, *handshake_done; /* shared instances (frames without fields) */
} module_state;

static module_state *get_state(PyObject *module) { return (module_state *)PyModule_GetState(module); }

/* A frame: an instance of class k with n items, stealing the references in
 * items[] (all of which must be non-NULL; NULL, with them released, if
 * allocation failed). */
static PyObject *make(module_state *st, int k, Py_ssize_t n, PyObject **items) {
    PyObject *obj = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    obj = st->alloc[k]((PyTypeObject *)st->cls[k], n);
    if (obj == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SetItem(obj, i, items[i]); /* steals; cannot fail on a new tuple of this size */
    return obj;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

typedef struct {
    const uint8_t *p;
    Py_ssize_t pos, end;
} reader;

/* A variable-length integer (RFC 9000 §16); 0, or -1 if truncated. */
static inline int varint(reader *r, uint64_t *out) {
    if (r->pos >= r->end)
        return -1;
    uint8_t first = r->p[r->pos];
    Py_ssize_t n = (Py_ssize_t)1 << (first >> 6);
    if (r->end - r->pos < n)
        return -1;
    uint64_t v = first & 0x3f;
    for (Py_ssize_t i = 1; i < n; i++)
        v = (v << 8) | r->p[r->pos + i];
    r->pos += n;
    *out = v;
    return 0;
}

static inline PyObject *u64(uint64_t v) { return PyLong_FromUnsignedLongLong(v); }

static inline PyObject *slice(reader *r, Py_ssize_t start, Py_ssize_t stop) {
    return PyBytes_FromStringAndSize((const char *)r->p + start, stop - start);
}

/* Result of one frame: OK (frame made), SLOW (leave the payload to the twin), FAILED (exception set). */
enum { OK = 0, SLOW = 1, FAILED = -1 };

static int parse_ack(module_state *st, reader *r, uint8_t t, uint64_t max_ranges, PyObject **frame) {
    uint64_t largest, delay, count, first;
    if (varint(r, &largest) || varint(r, &delay) || varint(r, &count) || varint(r, &first))
        return SLOW;
    if (count >= max_ranges || first > largest || count > (uint64_t)(r->end - r->pos) / 2)
        return SLOW; /* too many ranges, below packet number 0 (§19.3.1), or more than the bytes left hold */
    PyObject *ranges = PyTuple_New((Py_ssize_t)count + 1);
    if (ranges == NULL)
        return FAILED;
    uint64_t start = largest - first, stop = largest + 1;
    for (uint64_t i = 0;; i++) {
        PyObject *pair[2] = {u64(start), u64(stop)};
        PyObject *range = (pair[0] && pair[1]) ? PyTuple_New(2) : NULL;
        if (range == NULL) {
            Py_XDECREF(pair[0]);
            Py_XDECREF(pair[1]);
            Py_DECREF(ranges);
            return FAILED;
        }
        PyTuple_SetItem(range, 0, pair[0]);
        PyTuple_SetItem(range, 1, pair[1]);
        PyTuple_SetItem(ranges, (Py_ssize_t)i, range);
        if (i == count)
            break;
        uint64_t gap, length;
        if (varint(r, &gap) || varint(r, &length) || gap + 1 > start || length + 1 > start - gap - 1) {
            Py_DECREF(ranges);
            return SLOW;
        }
        stop = start - gap - 1;
        start = stop - 1 - length;
    }
    PyObject *ecn;
    if (t == 0x03) {
        uint64_t ect0, ect1, ce;
        if (varint(r, &ect0) || varint(r, &ect1) || varint(r, &ce)) {
            Py_DECREF(ranges);
            return SLOW;
        }
        ecn = Py_BuildValue("(KKK)", (unsigned long long)ect0, (unsigned long long)ect1, (unsigned long long)ce);
    } else {
        ecn = Py_NewRef(Py_None);
    }
    PyObject *items[3] = {ranges, u64(delay), ecn};
    *frame = make(st, ACK, 3, items);
    return *frame ? OK : FAILED;
}

static int parse_one(module_state *st, reader *r, uint8_t t, uint64_t max_ranges, PyObject **frame) {
    uint64_t a, b;
    if (t >= 0x08 && t <= 0x0f) { /* STREAM (§19.8) */
        uint64_t offset = 0, length;
        if (varint(r, &a))
            return SLOW;
        if ((t & 0x04) && varint(r, &offset))
            return SLOW;
        Py_ssize_t stop = r->end;
        if (t & 0x02) {
            if (varint(r, &length) || length > (uint64_t)(r->end - r->pos))
                return SLOW;
            stop = r->pos + (Py_ssize_t)length;
        }
        if (offset + (uint64_t)(stop - r->pos) > MAX_OFFSET)
            return SLOW;
        PyObject *items[4] = {u64(a), u64(offset), slice(r, r->pos, stop), PyBool_FromLong(t & 0x01)};
        r->pos = stop;
        *frame = make(st, STREAM, 4, items);
        return *frame ? OK : FAILED;
    }
    switch (t) {
    case 0x00: { /* PADDING: a run is one frame */
        Py_ssize_t start = r->pos - 1;
        while (r->pos < r->end && r->p[r->pos] == 0)
            r->pos++;
        PyObject *items[1] = {PyLong_FromSsize_t(r->pos - start)};
        *frame = make(st, PADDING, 1, items);
        return *frame ? OK : FAILED;
    }
    case 0x01:
        *frame = Py_NewRef(st->ping);
        return OK;
    case 0x02:
    case 0x03:
        return parse_ack(st, r, t, max_ranges, frame);
    case 0x06: { /* CRYPTO (§19.6) */
        if (varint(r, &a) || varint(r, &b) || b > (uint64_t)(r->end - r->pos) || a + b > MAX_OFFSET)
            return SLOW;
        Py_ssize_t stop = r->pos + (Py_ssize_t)b;
        PyObject *items[2] = {u64(a), slice(r, r->pos, stop)};
        r->pos = stop;
        *frame = make(st, CRYPTO, 2, items);
        return *frame ? OK : FAILED;
    }
    case 0x10: { /* MAX_DATA */
        if (varint(r, &a))
            return SLOW;
        PyObject *items[1] = {u64(a)};
        *frame = make(st, MAX_DATA, 1, items);
        return *frame ? OK : FAILED;
    }
    case 0x11: { /* MAX_STREAM_DATA */
        if (varint(r, &a) || varint(r, &b))
            return SLOW;
        PyObject *items[2] = {u64(a), u64(b)};
        *frame = make(st, MAX_STREAM_DATA, 2, items);
        return *frame ? OK : FAILED;
    }
    case 0x12:
    case 0x13: { /* MAX_STREAMS */
        if (varint(r, &a) || a > MAX_STREAMS_LIMIT)
            return SLOW;
        PyObject *items[2] = {PyBool_FromLong(t == 0x12), u64(a)};
        *frame = make(st, MAX_STREAMS, 2, items);
        return *frame ? OK : FAILED;
    }
    case 0x1e:
        *frame = Py_NewRef(st->handshake_done);
        return OK;
    default:
        return SLOW;
    }
}

/* parse(payload: bytes, allowed: bytes, max_ack_ranges: int) -> ParsedPayload | None */
static PyObject *frames_parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    module_state *st = get_state(module);
    if (st->cls[PARSED] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyquic._frames: bind() was not called");
        return NULL;
    }
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || PyBytes_Size(args[1]) != ALLOWED_LENGTH) {
        PyErr_SetString(PyExc_TypeError, "parse(payload: bytes, allowed: 64 bytes, max_ack_ranges: int)");
        return NULL;
    }
    unsigned long long max_ranges = PyLong_AsUnsignedLongLong(args[2]);
    if (max_ranges == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    const uint8_t *allowed = (const uint8_t *)PyBytes_AsString(args[1]);
    reader r = {(const uint8_t *)PyBytes_AsString(args[0]), 0, PyBytes_Size(args[0])};
    if (r.end == 0)
        Py_RETURN_NONE; /* no frames: the twin's PROTOCOL_VIOLATION */
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    int ack_eliciting = 0, in_flight = 0;
    while (r.pos < r.end) {
        uint8_t t = r.p[r.pos];
        if (t >= ALLOWED_LENGTH || !allowed[t])
            goto slow;
        r.pos++;
        PyObject *frame = NULL;
        int rc = parse_one(st, &r, t, max_ranges, &frame);
        if (rc == SLOW)
            goto slow;
        if (rc == FAILED)
            goto failed;
        int appended = PyList_Append(frames, frame);
        Py_DECREF(frame);
        if (appended < 0)
            goto failed;
        if (t == 0x00) {
            in_flight = 1;
        } else if (t != 0x02 && t != 0x03) {
            ack_eliciting = in_flight = 1; /* RFC 9002 §2: all but ACK, PADDING, CONNECTION_CLOSE */
        }
    }
    PyObject *items[3] = {frames, PyBool_FromLong(ack_eliciting), PyBool_FromLong(in_flight)};
    return make(st, PARSED, 3, items);
slow:
    Py_DECREF(frames);
    Py_RETURN_NONE;
failed:
    Py_DECREF(frames);
    return NULL;
}

static int module_clear(PyObject *module);

/* bind(Padding, Ack, Crypto, Stream, MaxData, MaxStreamData, MaxStreams, ParsedPayload, ping, handshake_done) */
static PyObject *frames_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    module_state *st = get_state(module);
    if (nargs != N_CLASSES + 2) {
        PyErr_Format(PyExc_TypeError, "bind() takes %d arguments", N_CLASSES + 2);
        return NULL;
    }
    for (int k = 0; k < N_CLASSES; k++) {
        PyObject *cls = args[k];
        if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
            PyErr_Format(PyExc_TypeError, "bind(): %s must be a tuple subclass", class_names[k]);
            return NULL;
        }
    }
    module_clear(module);
    for (int k = 0; k < N_CLASSES; k++) {
        st->cls[k] = Py_NewRef(args[k]);
        st->alloc[k] = (allocfunc)PyType_GetSlot((PyTypeObject *)args[k], Py_tp_alloc);
    }
    st->ping = Py_NewRef(args[N_CLASSES]);
    st->handshake_done = Py_NewRef(args[N_CLASSES + 1]);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))frames_parse, METH_FASTCALL,
     "parse(payload, allowed, max_ack_ranges): the payload's ParsedPayload, or None to leave it to the twin."},
    {"bind", (PyCFunction)(void (*)(void))frames_bind, METH_FASTCALL,
     "bind(Padding, Ack, Crypto, Stream, MaxData, MaxStreamData, MaxStreams, ParsedPayload, ping, handshake_done)"},
    {NULL, NULL, 0, NULL},
};

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    module_state *st = get_state(module);
    for (int k = 0; k < N_CLASSES; k++)
        Py_VISIT(st->cls[k]);
    Py_VISIT(st->ping);
    Py_VISIT(st->handshake_done);
    return 0;
}

static int module_clear(PyObject *module) {
    module_state *st = get_state(module);
    for (int k = 0; k < N_CLASSES; k++)
        Py_CLEAR(st->cls[k]);
    Py_CLEAR(st->ping);
    Py_CLEAR(st->handshake_done);
    return 0;
}

static void module_free(void *module) { module_clear((PyObject *)module); }

static PyModuleDef_Slot module_slots[] = {{0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyquic._frames",
    .m_doc = "The receive path's frame parser (RFC 9000 §19) for the common frames; "
             "pyquic.frames.parse_frames_py is its pure-Python twin.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__frames(void) { return PyModuleDef_Init(&module_def); }
