/* Queued log records and Events -> eventlog wire dicts or JSON lines, for the plain case only.
 *
 * The same dict, key for key and object for object, as the Python paths
 * (eventlog._records.logrecords.wires_of for records, eventlog._records.wire.to_wire for
 * Events) make; wire names come from the schema at setup().  For anything else this returns None in
 * the item's place and the Python path takes it.  Nothing here converts or
 * cleans a value: a value that would need it sends the item back, so every
 * conversion is still made (and counted) by one piece of code.
 *
 * Why C: under the GIL the application pays for every instruction the worker
 * spends; this loop is ~150 bytecodes per event in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#include "_walk.h"

/* Set once by setup(). */
static PyTypeObject *g_record_type;
static PyObject *g_actions, *g_level_names, *g_init_keys, *g_standard, *g_special, *g_empty;
static PyObject *g_sixty_four; /* 64, for the high half of a trace id */

/* The attributes the walk reads, by their place among LogRecord.__init__'s (set by setup()):
 * a record whose dict starts with those, in order, has each one's value at a known place,
 * read in the one pass that also checks the order, instead of a dict lookup each. */
enum { A_LEVELNAME, A_LEVELNO, A_NAME, A_THREADNAME, A_EXC_INFO, A_EXC_TEXT, A_CREATED, A_MSECS,
       A_PATHNAME, A_LINENO, A_FUNCNAME, A_COUNT };
#define MAX_INIT_KEYS 64
static signed char g_attr_at[MAX_INIT_KEYS]; /* index among the init keys -> A_* or -1 */
static Py_ssize_t g_max_message, g_max_value;

/* Interned attribute names; the wire keys (k_*) are set by setup() from the schema. */
static PyObject *s_levelname, *s_levelno, *s_name, *s_threadName, *s_created, *s_msecs, *s_exc_info,
    *s_exc_text, *s_pathname, *s_lineno, *s_funcName;
static PyObject *k_id, *k_tstamp, *k_action, *k_target, *k_tgType, *k_level, *k_levelName, *k_message,
    *k_metrics, *k_fields, *k_user, *k_session, *k_reqId, *k_thread, *k_codeFile, *k_codeLine,
    *k_codeFunc, *k_tags, *k_exc_info, *k_site, *k_cluster, *k_host, *k_pid, *s_logger, *k_traceId, *k_spanId, *k_traceFlags, *f_trace, *f_span, *f_flags;

/* ``digits`` lowercase hex digits of value, zero-padded, into out. */
static void
hex(char *out, unsigned long long value, int digits)
{
    static const char alphabet[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = alphabet[value & 0xF];
        value >>= 4;
    }
}

static int
plain(PyObject *text, Py_ssize_t limit)
{
    return PyUnicode_CheckExact(text) && PyUnicode_IS_ASCII(text) &&
           PyUnicode_GET_LENGTH(text) <= limit;
}

/* A str UTF-8 can encode (no lone surrogates): ASCII at once, else by encoding it (the UTF-8
 * is cached in the str, and the encoder reuses it).  A str that cannot goes to the Python
 * path, which escapes and counts the surrogates. */
static int
encodable(PyObject *text)
{
    if (PyUnicode_IS_ASCII(text)) {
        return 1;
    }
    if (PyUnicode_AsUTF8AndSize(text, NULL) == NULL) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* An exact int within int64 (what every format carries as a number); an error is cleared. */
static int
int64(PyObject *value)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0;
}

/* ---- One event as its wire fields, in wire order: what both outputs are made from.
 *
 * The walk over a record or an Event (below) fills a Wire (_walk.h).  wires() turns it into
 * the wire dict; lines() writes it straight out as a JSON line, with no dict in between;
 * _otlp.c borrows the walk (the capsule made at import) for OTLP envelopes. */

static void
wire_clear(Wire *w)
{
    for (Py_ssize_t i = 0; i < w->n; i++) {
        Py_XDECREF(w->values[i]);
    }
    w->n = 0;
}

/* Append key: value (a new reference, stolen; NULL: an error already set).  -1 on error. */
static int
put(Wire *w, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    if (w->n == MAX_PAIRS) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_RuntimeError, "more wire fields than eventlog_speedups holds");
        return -1;
    }
    w->keys[w->n] = key;
    w->values[w->n] = value;
    w->n++;
    return 0;
}

/* Append key: value (borrowed). */
static int
set(Wire *w, PyObject *key, PyObject *value)
{
    return put(w, key, Py_NewRef(value));
}

/* The value of key (borrowed), or NULL. */
static PyObject *
get(Wire *w, PyObject *key)
{
    for (Py_ssize_t i = 0; i < w->n; i++) {
        if (w->keys[i] == key) {
            return w->values[i];
        }
    }
    return NULL;
}

/* The extra= keys into metrics and fields.  1: done, 0: not plain (the Python path
 * takes the record), -1: error. */
static int
put_extras(Wire *wire, PyObject *attributes, Py_ssize_t pos)
{
    PyObject *metrics = NULL, *fields = NULL, *key, *value;
    int result = 1;
    while (PyDict_Next(attributes, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            result = 0;
            goto done;
        }
        int found = PySet_Contains(g_standard, key);
        if (found < 0) {
            result = -1;
            goto done;
        }
        if (found) {
            continue; /* message, asctime ... set by a formatter */
        }
        if (!plain(key, g_max_value)) {
            result = 0;
            goto done;
        }
        found = PySet_Contains(g_special, key);
        if (found != 0) {
            result = found < 0 ? -1 : 0;
            goto done;
        }
        PyObject **target;
        if (int64(value) || (PyFloat_CheckExact(value) && isfinite(PyFloat_AS_DOUBLE(value)))) {
            target = &metrics;
        }
        else if (plain(value, g_max_value)) {
            target = &fields;
        }
        else {
            result = 0;
            goto done;
        }
        if (*target == NULL && (*target = PyDict_New()) == NULL) {
            result = -1;
            goto done;
        }
        if (PyDict_SetItem(*target, key, value) < 0) {
            result = -1;
            goto done;
        }
    }
    if (metrics != NULL && set(wire, k_metrics, metrics) < 0) {
        result = -1;
    }
    else if (fields != NULL && set(wire, k_fields, fields) < 0) {
        result = -1;
    }
done:
    Py_XDECREF(metrics);
    Py_XDECREF(fields);
    return result;
}

/* ``msg % args`` for the usual logging call: ASCII text whose only conversions are %s of an
 * ASCII str, %d of an int within int64 and %%, as many as there are args.  The result is the
 * same str PyUnicode_Format makes, without its general machinery (~1.2k instructions a record
 * less).  NULL without an error: anything else, for PyUnicode_Format. */
/* The decimal text of value into out (24 bytes at least); its length. */
static Py_ssize_t
decimal(char *out, long long value)
{
    char digits[24];
    int n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    Py_ssize_t length = 0;
    if (value < 0) {
        out[length++] = '-';
    }
    while (n) {
        out[length++] = digits[--n];
    }
    return length;
}

#define FORMAT_ARGS 8
static PyObject *
simple_format(PyObject *msg, PyObject *args)
{
    if (!PyUnicode_IS_ASCII(msg) || !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) > FORMAT_ARGS) {
        return NULL;
    }
    const char *text = (const char *)PyUnicode_1BYTE_DATA(msg);
    Py_ssize_t size = PyUnicode_GET_LENGTH(msg), nargs = PyTuple_GET_SIZE(args), used = 0, length = 0;
    char numbers[FORMAT_ARGS][24];
    Py_ssize_t number_len[FORMAT_ARGS];
    /* First pass: check every conversion and measure the result. */
    for (Py_ssize_t i = 0; i < size; i++) {
        if (text[i] != '%') {
            length++;
            continue;
        }
        if (++i == size) {
            return NULL;
        }
        if (text[i] == '%') {
            length++;
            continue;
        }
        if (used == nargs) {
            return NULL;
        }
        PyObject *arg = PyTuple_GET_ITEM(args, used);
        if (text[i] == 's' && PyUnicode_CheckExact(arg) && PyUnicode_IS_ASCII(arg)) {
            length += PyUnicode_GET_LENGTH(arg);
        }
        else if (text[i] == 'd' && PyLong_CheckExact(arg)) {
            int overflow;
            long long value = PyLong_AsLongLongAndOverflow(arg, &overflow);
            if (overflow || (value == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return NULL;
            }
            number_len[used] = decimal(numbers[used], value);
            length += number_len[used];
        }
        else {
            return NULL;
        }
        used++;
    }
    if (used != nargs) {
        return NULL; /* "not all arguments converted": PyUnicode_Format says so */
    }
    PyObject *out = PyUnicode_New(length, 127);
    if (out == NULL) {
        return NULL;
    }
    char *to = (char *)PyUnicode_1BYTE_DATA(out);
    used = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        if (text[i] != '%') {
            *to++ = text[i];
            continue;
        }
        i++;
        if (text[i] == '%') {
            *to++ = '%';
        }
        else if (text[i] == 's') {
            PyObject *arg = PyTuple_GET_ITEM(args, used++);
            memcpy(to, PyUnicode_1BYTE_DATA(arg), PyUnicode_GET_LENGTH(arg));
            to += PyUnicode_GET_LENGTH(arg);
        }
        else {
            memcpy(to, numbers[used], number_len[used]);
            to += number_len[used++];
        }
    }
    return out;
}

/* The record's dict must start with LogRecord.__init__'s attributes, in order (any extras
 * follow them): the values of those the walk reads into values (new references), and *pos
 * where the extras start.  1: done, 0: another layout (not plain: the Python path), -1: error. */
static int
init_values(PyObject *attributes, PyObject **values, Py_ssize_t *pos)
{
    Py_ssize_t init_len = PyList_GET_SIZE(g_init_keys);
    if (PyDict_GET_SIZE(attributes) < init_len) {
        return 0;
    }
    PyObject *key, *value;
    Py_ssize_t index = 0;
    *pos = 0;
    while (index < init_len && PyDict_Next(attributes, pos, &key, &value)) {
        PyObject *want = PyList_GET_ITEM(g_init_keys, index);
        if (key != want) { /* the same interned names, unless the record was made otherwise */
            int same = PyObject_RichCompareBool(key, want, Py_EQ);
            if (same != 1) {
                return same;
            }
        }
        if (g_attr_at[index] >= 0) {
            values[g_attr_at[index]] = Py_NewRef(value);
        }
        index++;
    }
    return index == init_len;
}

/* The fields of eventlog.context(**fields) into the wire's fields, which put_extras made of
 * plain keys and values: the record's own win.  Plain ints, finite floats and plain text
 * only; anything else sends the record back.  1: done, 0: not plain, -1: error. */
static int
put_context_fields(Wire *wire, PyObject *ctx_fields)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    if (!PyDict_CheckExact(ctx_fields)) {
        return 0;
    }
    if (PyDict_GET_SIZE(ctx_fields) == 0) {
        return 1;
    }
    /* All checked first: a record sent back must leave nothing half-added. */
    while (PyDict_Next(ctx_fields, &pos, &key, &value)) {
        if (!plain(key, g_max_value) ||
            !(int64(value) || (PyFloat_CheckExact(value) && isfinite(PyFloat_AS_DOUBLE(value))) ||
              plain(value, g_max_value))) {
            return 0;
        }
    }
    PyObject *own = get(wire, k_fields); /* borrowed */
    PyObject *fields = own != NULL ? Py_NewRef(own) : PyDict_New();
    if (fields == NULL) {
        return -1;
    }
    int result = 1;
    pos = 0;
    while (PyDict_Next(ctx_fields, &pos, &key, &value)) {
        int has = own != NULL ? PyDict_Contains(own, key) : 0;
        if (has < 0 || (!has && PyDict_SetItem(fields, key, value) < 0)) {
            result = -1;
            break;
        }
    }
    if (result == 1 && own == NULL && set(wire, k_fields, fields) < 0) {
        result = -1;
    }
    Py_DECREF(fields);
    return result;
}

/* The context's user, session, request id.  1: done, 0: not plain, -1: error. */
static int
put_context(Wire *wire, PyObject *ctx)
{
    if (ctx == g_empty) {
        return 1;
    }
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 7) {
        return 0;
    }
    PyObject *ctx_fields = PyTuple_GET_ITEM(ctx, 6);
    if (ctx_fields != Py_None) {
        int done = put_context_fields(wire, ctx_fields);
        if (done <= 0) {
            return done;
        }
    }
    PyObject *keys[3] = {k_user, k_session, k_reqId};
    for (int i = 0; i < 3; i++) {
        PyObject *value = PyTuple_GET_ITEM(ctx, i);
        if (value == Py_None) {
            continue;
        }
        if (!plain(value, g_max_value)) {
            return 0;
        }
        if (set(wire, keys[i], value) < 0) {
            return -1;
        }
    }
    return 1;
}

/* An int as ``digits`` lowercase hex digits (32, 16 or 2), as format(value, spec) writes it:
 * written out for an exact int in range, else by int.__format__ (a negative or too
 * large value comes out as Python writes it).  NULL with the error cleared: not plain. */
static PyObject *
hex_text(PyObject *value, int digits, PyObject *spec)
{
    if (PyLong_CheckExact(value)) {
        unsigned long long low, high = 0;
        int fits = 0;
        if (digits == 32) {
            PyObject *shifted = PyNumber_Rshift(value, g_sixty_four);
            if (shifted != NULL) {
                high = PyLong_AsUnsignedLongLong(shifted); /* negative or >= 2**64: error */
                Py_DECREF(shifted);
                if (!(high == (unsigned long long)-1 && PyErr_Occurred())) {
                    low = PyLong_AsUnsignedLongLongMask(value);
                    fits = !(low == (unsigned long long)-1 && PyErr_Occurred());
                }
            }
        }
        else {
            low = PyLong_AsUnsignedLongLong(value);
            fits = !(low == (unsigned long long)-1 && PyErr_Occurred()) &&
                   (digits == 16 || low <= 0xFFULL);
        }
        PyErr_Clear();
        if (fits) {
            char text[32];
            if (digits == 32) {
                hex(text, high, 16);
                hex(text + 16, low, 16);
            }
            else {
                hex(text, low, digits);
            }
            return PyUnicode_FromStringAndSize(text, digits);
        }
    }
    PyObject *text = PyObject_Format(value, spec);
    if (text == NULL) {
        PyErr_Clear();
    }
    return text;
}

/* The context's trace ids (ints) as W3C hex, as the Python path's format() writes them.
 * 1: done, 0: not plain, -1: error. */
static int
put_trace(Wire *wire, PyObject *ctx)
{
    PyObject *keys[3] = {k_traceId, k_spanId, k_traceFlags};
    PyObject *specs[3] = {f_trace, f_span, f_flags};
    int digits[3] = {32, 16, 2};
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 7) {
        return 0;
    }
    if (PyTuple_GET_ITEM(ctx, 3) == Py_None) {
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        PyObject *value = PyTuple_GET_ITEM(ctx, 3 + i);
        if (!PyLong_Check(value)) {
            return 0;
        }
        PyObject *text = hex_text(value, digits[i], specs[i]);
        if (text == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        if (put(wire, keys[i], text) < 0) {
            return -1;
        }
    }
    return 1;
}

/* Set key to the record's attribute unless that is None: a str, or an int within int64 when
 * is_int.  1: done, 0: missing or of another type (not plain), -1: error. */
static int
put_attr(Wire *wire, PyObject *key, PyObject *value, int is_int)
{
    if (value == Py_None) {
        return 1;
    }
    if (is_int ? !int64(value) : !(PyUnicode_CheckExact(value) && encodable(value))) {
        return 0;
    }
    return set(wire, key, value) == 0 ? 1 : -1;
}

/* wire.update(static), for a dict of a few keys. */
static int
put_static(Wire *wire, PyObject *stat)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(stat, &pos, &key, &value)) {
        if (set(wire, key, value) < 0) {
            return -1;
        }
    }
    return 0;
}

/* eventlog._records.logrecords.record_time_ns for a float ``created`` of 0 or more (else not plain):
 * logging's own milliseconds.  1: done, 0: not plain. */
static int
record_time_ns(double created, PyObject *msecs, long long *out)
{
    if (!(created >= 0.0 && created < 9223372036.0)) {
        return 0;
    }
    double seconds = floor(created);
    double fraction = created - seconds;
    long long millis = (long long)(fraction * 1000.0);
    long long secs = (long long)seconds;
    if (PyFloat_CheckExact(msecs)) {
        double logged_ms = PyFloat_AS_DOUBLE(msecs);
        if (logged_ms != (double)millis && logged_ms >= 0.0 && logged_ms < 1000.0) {
            long long logged = (long long)logged_ms;
            if (logged == millis - 1 || logged == millis + 1) {
                millis = logged;
            }
            else if (logged == 999 && millis == 0) {
                secs -= 1;
                millis = 999;
            }
        }
    }
    /* The sub-millisecond part from the float, within logging's millisecond. */
    long long nanos = (long long)(fraction * 1e9) % 1000000LL;
    *out = (secs * 1000LL + millis) * 1000000LL + nanos;
    return 1;
}

/* eventlog._records.wire.IdMaker.make, written out (snprintf costs ~3k instructions):
 * f"{max(millis, 0):012x}{node}{seq:08x}" into out (32 chars).  -1 on error. */
static int
write_id(char *out, long long millis, const char *node, PyObject *next_seq)
{
    PyObject *seq_obj = PyObject_CallNoArgs(next_seq);
    if (seq_obj == NULL) {
        return -1;
    }
    unsigned long long seq = PyLong_AsUnsignedLongLongMask(seq_obj);
    Py_DECREF(seq_obj);
    if (seq == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    hex(out, millis > 0 ? (unsigned long long)millis & 0xFFFFFFFFFFFFULL : 0, 12);
    memcpy(out + 12, node, 12);
    hex(out + 24, seq & 0xFFFFFFFFULL, 8);
    return 0;
}

/* The walk over one queued log record: its wire fields into ``wire`` (the id's value left
 * NULL, to be drawn).  1: done, 0: not plain, -1: error. */
static int
record_fields(Wire *wire, PyObject *item, PyObject *stat, int with_context)
{
    PyObject *record, *message, *ctx;
    PyObject *v[A_COUNT] = {NULL}, *rendered = NULL, *attributes = NULL;
    Py_ssize_t extras_at;
    int result;
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
        return 0;
    }
    record = PyTuple_GET_ITEM(item, 0);
    message = PyTuple_GET_ITEM(item, 1);
    ctx = PyTuple_GET_ITEM(item, 2);

#define NOT_PLAIN goto not_plain
#define STEP(call)            \
    if ((result = (call)) <= 0) { \
        if (result < 0)       \
            goto error;       \
        NOT_PLAIN;            \
    }

    /* For an exact LogRecord (no properties of a subclass), the instance dict is what
     * getattr reads: LogRecord.__init__'s attributes first, in order (else not plain). */
    if (Py_TYPE(record) != g_record_type) {
        return 0;
    }
    if ((attributes = PyObject_GenericGetDict(record, NULL)) == NULL) {
        goto error;
    }
    STEP(init_values(attributes, v, &extras_at));

    PyObject *levelname = v[A_LEVELNAME], *level = v[A_LEVELNO], *name = v[A_NAME],
             *thread = v[A_THREADNAME], *created = v[A_CREATED];
    if (!PyUnicode_CheckExact(levelname)) { /* no hashing of an application's object here */
        NOT_PLAIN;
    }
    PyObject *action = PyDict_GetItemWithError(g_actions, levelname); /* borrowed */
    if (action == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        NOT_PLAIN;
    }
    if (!PyLong_CheckExact(level)) {
        NOT_PLAIN;
    }
    PyObject *level_name = PyDict_GetItemWithError(g_level_names, level); /* borrowed */
    if (level_name == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        NOT_PLAIN;
    }
    if (!plain(name, g_max_value)) {
        NOT_PLAIN;
    }
    if (thread != Py_None && !(PyUnicode_CheckExact(thread) && encodable(thread))) {
        NOT_PLAIN;
    }
    /* Not None: the Python path (no truth test, which could run an application's __bool__). */
    if (v[A_EXC_INFO] != Py_None || v[A_EXC_TEXT] != Py_None) {
        NOT_PLAIN;
    }
    if (PyTuple_CheckExact(message) && PyTuple_GET_SIZE(message) == 2) {
        PyObject *msg = PyTuple_GET_ITEM(message, 0);
        if (!PyUnicode_CheckExact(msg)) {
            NOT_PLAIN;
        }
        rendered = simple_format(msg, PyTuple_GET_ITEM(message, 1));
        if (rendered == NULL && !PyErr_Occurred()) {
            rendered = PyUnicode_Format(msg, PyTuple_GET_ITEM(message, 1));
        }
        if (rendered == NULL) {
            PyErr_Clear(); /* the Python path sends the placeholder, counted */
            NOT_PLAIN;
        }
    }
    else if (PyUnicode_CheckExact(message)) {
        rendered = Py_NewRef(message);
    }
    else {
        NOT_PLAIN;
    }
    if (!plain(rendered, g_max_message)) {
        NOT_PLAIN;
    }
    if (!PyFloat_CheckExact(created)) {
        NOT_PLAIN;
    }
    long long time_ns;
    if (!record_time_ns(PyFloat_AS_DOUBLE(created), v[A_MSECS], &time_ns)) {
        NOT_PLAIN;
    }
    wire->millis = time_ns / 1000000;
    /* What eventlog._engine.encoder._times_ns gives a record: logging's millisecond and the
     * float's sub-millisecond part. */
    wire->time_ns =
        wire->millis * 1000000LL + (long long)(PyFloat_AS_DOUBLE(created) * 1e9) % 1000000LL;
    wire->action = action;
    wire->event = NULL;
    wire->keys[0] = k_id;
    wire->values[0] = NULL;
    wire->n = 1;
    if (put(wire, k_tstamp, PyLong_FromLongLong(wire->millis)) < 0 || set(wire, k_action, action) < 0 ||
        set(wire, k_target, name) < 0 || set(wire, k_tgType, s_logger) < 0 ||
        set(wire, k_level, level) < 0 || set(wire, k_levelName, level_name) < 0 ||
        set(wire, k_message, rendered) < 0) {
        goto error;
    }
    STEP(put_extras(wire, attributes, extras_at));
    if (with_context) {
        STEP(put_context(wire, ctx));
    }
    if (put_static(wire, stat) < 0) {
        goto error;
    }
    if (thread != Py_None && set(wire, k_thread, thread) < 0) {
        goto error;
    }
    PyObject *code_keys[3] = {k_codeFile, k_codeLine, k_codeFunc};
    PyObject *code_values[3] = {v[A_PATHNAME], v[A_LINENO], v[A_FUNCNAME]};
    for (int i = 0; i < 3; i++) {
        STEP(put_attr(wire, code_keys[i], code_values[i], i == 1));
    }
    if (ctx != g_empty) { /* whatever with_context says, as in Python */
        STEP(put_trace(wire, ctx));
    }
    result = 1;
    goto cleanup;

not_plain:
    result = 0;
    goto cleanup;
error:
    result = -1;
cleanup:
    for (int i = 0; i < A_COUNT; i++) {
        Py_XDECREF(v[i]);
    }
    Py_XDECREF(rendered);
    Py_XDECREF(attributes);
    return result;
#undef NOT_PLAIN
}


/* ---- Events (log_event): the same fields as eventlog._records.wire.to_wire with the static
 * fields and the context merged, for an Event whose values need no cleaning.  The Event's
 * __slots__ are read at their offsets, found once by setup(): no attribute lookup. */

enum {
    E_ACTION, E_TARGET, E_TG_TYPE, E_MESSAGE, E_LEVEL, E_TAGS, E_FIELDS, E_METRICS, E_TIME_NS,
    E_CONTEXT, E_USER, E_SESSION, E_REQUEST_ID, E_CODE_FILE, E_CODE_LINE, E_CODE_FUNC, E_EXC_INFO,
    E_THREAD, E_ID, E_SITE, E_CLUSTER, E_HOST, E_PID, E_SLOTS
};
static const char *const event_slot_names[E_SLOTS] = {
    "action", "target", "tg_type", "message", "level", "tags", "fields", "metrics", "time_ns",
    "context", "user", "session", "request_id", "code_file", "code_line", "code_func", "exc_info",
    "thread", "id", "site", "cluster", "host", "pid",
};
static PyTypeObject *g_event_type;
static Py_ssize_t g_event_offsets[E_SLOTS];

/* The slot's value (borrowed; NULL when unset). */
#define SLOT(obj, i) (*(PyObject **)((char *)(obj) + g_event_offsets[i]))

/* A metric (int64, finite float) or, when text_too, a field value (also plain text). */
static int
plain_number(PyObject *value)
{
    return int64(value) || (PyFloat_CheckExact(value) && isfinite(PyFloat_AS_DOUBLE(value)));
}

/* A copy of a dict whose keys are plain text and values plain numbers (or text, when
 * text_too), or the dict itself when ``share``: a new reference, Py_None (new reference)
 * when not plain, NULL on error.  ``into`` (may be NULL) gets only the keys it does not
 * have yet. */
static PyObject *
plain_map(PyObject *values, int text_too, PyObject *into, int share)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    if (!PyDict_CheckExact(values)) {
        Py_RETURN_NONE;
    }
    while (PyDict_Next(values, &pos, &key, &value)) {
        if (!plain(key, g_max_value) ||
            !(plain_number(value) || (text_too && plain(value, g_max_value)))) {
            Py_RETURN_NONE;
        }
    }
    if (into == NULL) {
        return share ? Py_NewRef(values) : PyDict_Copy(values);
    }
    pos = 0;
    while (PyDict_Next(values, &pos, &key, &value)) {
        int has = PyDict_Contains(into, key);
        if (has < 0 || (!has && PyDict_SetItem(into, key, value) < 0)) {
            return NULL;
        }
    }
    return Py_NewRef(into);
}

/* A str slot kept whole (thread, code location, exc_info): exact and encodable. */
static int
whole_text(PyObject *value)
{
    return PyUnicode_CheckExact(value) && encodable(value);
}

/* The walk over one Event: its wire fields into ``wire`` (the id's value NULL when the
 * Event has none yet).  1: done, 0: not plain, -1: error. */
static int
event_fields(Wire *wire, PyObject *event, PyObject *stat, int with_context)
{
    PyObject *extra = NULL;
    PyObject *v;
    for (int i = 0; i < E_SLOTS; i++) {
        if (SLOT(event, i) == NULL) {
            return 0; /* an unset slot: the Python path says what it is */
        }
    }
    /* What the static enrichers would set is merged from ``stat``; an Event with its own
     * goes the Python way. */
    if (SLOT(event, E_SITE) != Py_None || SLOT(event, E_CLUSTER) != Py_None ||
        SLOT(event, E_HOST) != Py_None || SLOT(event, E_PID) != Py_None) {
        return 0;
    }
    PyObject *event_id = SLOT(event, E_ID);
    if (event_id != Py_None && !PyUnicode_CheckExact(event_id)) {
        return 0;
    }
    PyObject *time_obj = SLOT(event, E_TIME_NS);
    if (!PyLong_CheckExact(time_obj)) {
        return 0;
    }
    int overflow = 0;
    long long time_ns = PyLong_AsLongLongAndOverflow(time_obj, &overflow);
    if (overflow || (time_ns == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    long long millis = time_ns / 1000000;
    if (time_ns % 1000000 != 0 && time_ns < 0) {
        millis -= 1; /* floor division, as Python's // */
    }
    PyObject *ctx = SLOT(event, E_CONTEXT);
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 7) {
        return 0;
    }
    PyObject *action = SLOT(event, E_ACTION);
    if (!plain(action, g_max_value)) {
        return 0;
    }
    PyObject *target = SLOT(event, E_TARGET), *tg_type = SLOT(event, E_TG_TYPE);
    PyObject *message = SLOT(event, E_MESSAGE), *level = SLOT(event, E_LEVEL);
    if ((target != Py_None && !plain(target, g_max_value)) ||
        (tg_type != Py_None && !plain(tg_type, g_max_value)) ||
        (message != Py_None && !plain(message, g_max_message))) {
        return 0;
    }
    PyObject *level_name = NULL;
    if (level != Py_None) {
        if (!int64(level)) {
            return 0;
        }
        level_name = PyDict_GetItemWithError(g_level_names, level); /* borrowed */
        if (level_name == NULL) {
            return PyErr_Occurred() ? -1 : 0; /* a level of its own name: the Python path */
        }
    }
    /* The request values: the event's own, else (with the context enricher) the context's. */
    PyObject *people[3] = {SLOT(event, E_USER), SLOT(event, E_SESSION), SLOT(event, E_REQUEST_ID)};
    for (int i = 0; i < 3; i++) {
        if (people[i] == Py_None && with_context) {
            people[i] = PyTuple_GET_ITEM(ctx, i);
        }
        if (people[i] != Py_None && !plain(people[i], g_max_value)) {
            return 0;
        }
    }
    PyObject *thread = SLOT(event, E_THREAD), *code_file = SLOT(event, E_CODE_FILE);
    PyObject *code_line = SLOT(event, E_CODE_LINE), *code_func = SLOT(event, E_CODE_FUNC);
    PyObject *exc_info = SLOT(event, E_EXC_INFO);
    if ((thread != Py_None && !whole_text(thread)) || (code_file != Py_None && !whole_text(code_file)) ||
        (code_line != Py_None && !int64(code_line)) || (code_func != Py_None && !whole_text(code_func)) ||
        (exc_info != Py_None && !whole_text(exc_info))) {
        return 0;
    }
    wire->millis = millis;
    wire->time_ns = time_ns;
    wire->action = action;
    wire->event = event;
    wire->keys[0] = k_id;
    wire->values[0] = event_id == Py_None ? NULL : Py_NewRef(event_id);
    wire->n = 1;
    if (put(wire, k_tstamp, PyLong_FromLongLong(millis)) < 0 || set(wire, k_action, action) < 0 ||
        (target != Py_None && set(wire, k_target, target) < 0) ||
        (tg_type != Py_None && set(wire, k_tgType, tg_type) < 0) ||
        (level_name != NULL &&
         (set(wire, k_level, level) < 0 || set(wire, k_levelName, level_name) < 0)) ||
        (message != Py_None && set(wire, k_message, message) < 0)) {
        goto error;
    }
    /* tags, metrics, fields (the context's fields after the event's own), as put_extras. */
    v = SLOT(event, E_TAGS);
    if (v != Py_None) {
        if (!PyList_CheckExact(v)) {
            goto not_plain;
        }
        Py_ssize_t n = PyList_GET_SIZE(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!plain(PyList_GET_ITEM(v, i), g_max_value)) {
                goto not_plain;
            }
        }
        if (n > 0 && put(wire, k_tags, wire->share ? Py_NewRef(v) : PyList_GetSlice(v, 0, n)) < 0) {
            goto error;
        }
    }
    v = SLOT(event, E_METRICS);
    if (v != Py_None) {
        if ((extra = plain_map(v, 0, NULL, wire->share)) == NULL) {
            goto error;
        }
        if (extra == Py_None) {
            goto not_plain;
        }
        if (PyDict_GET_SIZE(extra) > 0 && set(wire, k_metrics, extra) < 0) {
            goto error;
        }
        Py_CLEAR(extra);
    }
    v = SLOT(event, E_FIELDS);
    PyObject *ctx_fields = with_context ? PyTuple_GET_ITEM(ctx, 6) : Py_None;
    if (v != Py_None || ctx_fields != Py_None) {
        if (v != Py_None) {
            /* Merged with the context's: a dict of its own. */
            extra = plain_map(v, 1, NULL, wire->share && ctx_fields == Py_None);
        }
        else {
            extra = PyDict_New();
        }
        if (extra == NULL) {
            goto error;
        }
        if (extra == Py_None) {
            goto not_plain;
        }
        if (ctx_fields != Py_None) {
            PyObject *merged = plain_map(ctx_fields, 1, extra, 0);
            if (merged == NULL) {
                goto error;
            }
            int same = merged == extra;
            Py_DECREF(merged);
            if (!same) {
                goto not_plain;
            }
        }
        if (PyDict_GET_SIZE(extra) > 0 && set(wire, k_fields, extra) < 0) {
            goto error;
        }
        Py_CLEAR(extra);
    }
    PyObject *people_keys[3] = {k_user, k_session, k_reqId};
    for (int i = 0; i < 3; i++) {
        if (people[i] != Py_None && set(wire, people_keys[i], people[i]) < 0) {
            goto error;
        }
    }
    if (put_static(wire, stat) < 0) {
        goto error;
    }
    if ((thread != Py_None && set(wire, k_thread, thread) < 0) ||
        (code_file != Py_None && set(wire, k_codeFile, code_file) < 0) ||
        (code_line != Py_None && set(wire, k_codeLine, code_line) < 0) ||
        (code_func != Py_None && set(wire, k_codeFunc, code_func) < 0) ||
        (exc_info != Py_None && set(wire, k_exc_info, exc_info) < 0)) {
        goto error;
    }
    int done = put_trace(wire, ctx);
    if (done <= 0) {
        if (done < 0) {
            goto error;
        }
        goto not_plain;
    }
    return 1;

not_plain:
    Py_XDECREF(extra);
    return 0;
error:
    Py_XDECREF(extra);
    return -1;
}

/* The wire fields of one queued item (a record tuple or an Event).  1, 0 or -1. */
static int
item_fields(Wire *wire, PyObject *item, PyObject *stat, int with_context)
{
    wire->n = 0;
    int done = g_event_type != NULL && Py_IS_TYPE(item, g_event_type)
                   ? event_fields(wire, item, stat, with_context)
                   : record_fields(wire, item, stat, with_context);
    if (done <= 0) {
        wire_clear(wire);
    }
    return done;
}

/* The id of an item whose walk is done, drawn now (and kept on the Event, as to_wire does):
 * its 32 chars into out.  -1 on error. */
static int
draw_id(Wire *wire, char *out, const char *node, PyObject *next_seq)
{
    if (write_id(out, wire->millis, node, next_seq) < 0) {
        return -1;
    }
    if (wire->event != NULL) {
        PyObject *made = PyUnicode_FromStringAndSize(out, 32);
        if (made == NULL) {
            return -1;
        }
        Py_XSETREF(SLOT(wire->event, E_ID), made);
    }
    return 0;
}
#undef SLOT

/* The offset of each of the Event's slots, from its member descriptors. */
static int
event_setup(PyObject *event_type)
{
    if (!PyType_Check(event_type)) {
        PyErr_SetString(PyExc_TypeError, "event_type must be a class");
        return -1;
    }
    for (int i = 0; i < E_SLOTS; i++) {
        PyObject *descr = PyObject_GetAttrString(event_type, event_slot_names[i]);
        if (descr == NULL) {
            return -1;
        }
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok) {
            g_event_offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", event_slot_names[i]);
            return -1;
        }
    }
    Py_XSETREF(g_event_type, (PyTypeObject *)Py_NewRef(event_type));
    return 0;
}

/* The arguments wires() and lines() share.  0, or -1 with an error set. */
static int
batch_args(PyObject *const *args, int *with_context, const char **node)
{
    if (g_actions == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._wires.setup() was not called");
        return -1;
    }
    if ((*with_context = PyObject_IsTrue(args[2])) < 0) {
        return -1;
    }
    if (!PyList_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "items must be a list and static a dict");
        return -1;
    }
    Py_ssize_t node_len;
    if ((*node = PyUnicode_AsUTF8AndSize(args[3], &node_len)) == NULL) {
        return -1;
    }
    if (node_len != 12) {
        PyErr_SetString(PyExc_ValueError, "node must be 12 hex digits");
        return -1;
    }
    return 0;
}

/* The wire dict of a walked item, its id drawn now if still to be: a new reference, or NULL
 * with an error set.  What the walk shared of an Event (its own tags, fields, metrics) is
 * copied: the wire dict must not share them. */
static PyObject *
wire_dict(Wire *wire, const char *node, PyObject *next_seq)
{
    if (wire->values[0] == NULL) {
        char id[32];
        if (draw_id(wire, id, node, next_seq) < 0 ||
            (wire->values[0] = PyUnicode_FromStringAndSize(id, 32)) == NULL) {
            return NULL;
        }
    }
    /* Presized: no resize while it is filled. */
    PyObject *dict = _PyDict_NewPresized(wire->n);
    if (dict == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < wire->n; i++) {
        PyObject *key = wire->keys[i], *value = Py_NewRef(wire->values[i]);
        if (wire->share && (key == k_tags || key == k_fields || key == k_metrics)) {
            Py_SETREF(value, PyList_CheckExact(value)   ? PyList_GetSlice(value, 0, PY_SSIZE_T_MAX)
                             : PyDict_CheckExact(value) ? PyDict_Copy(value)
                                                        : Py_NewRef(value));
        }
        if (value == NULL || PyDict_SetItem(dict, key, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(value);
    }
    return dict;
}

/* The wire dict of one item: a new reference, Py_None (new reference) when not plain. */
static PyObject *
one_wire(Wire *wire, PyObject *item, PyObject *stat, int with_context, const char *node,
         PyObject *next_seq)
{
    int done = item_fields(wire, item, stat, with_context);
    if (done <= 0) {
        if (done < 0) {
            PyErr_Clear(); /* an unexpected error (a hostile attribute ...): the Python path decides */
        }
        Py_RETURN_NONE;
    }
    PyObject *dict = wire_dict(wire, node, next_seq);
    wire_clear(wire);
    if (dict == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return dict;
}

static PyObject *
wires(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int with_context;
    const char *node;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "wires(items, static, with_context, node, next_seq)");
        return NULL;
    }
    if (batch_args(args, &with_context, &node) < 0) {
        return NULL;
    }
    PyObject *items = args[0], *stat = args[1], *next_seq = args[4];
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    Wire wire;
    wire.n = 0;
    wire.share = 0;
    Py_ssize_t holes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Held for the call: a hostile __bool__ (exc_info) must not free it under us. */
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        PyObject *dict = one_wire(&wire, item, stat, with_context, node, next_seq);
        Py_DECREF(item);
        if (dict == Py_None) {
            holes++;
        }
        PyList_SET_ITEM(out, i, dict);
    }
    return Py_BuildValue("(Nn)", out, holes);
}

/* ---- JSON lines, byte for byte what orjson.dumps(wire, option=OPT_APPEND_NEWLINE) writes
 * for the wire dict (eventlog._builtin.formats.dumps_line): keys in wire order, no spaces,
 * text as UTF-8 with only '"', '\\' and control characters escaped.  A value this writer
 * does not take (a float Python writes with an exponent, a type it does not know) sends the
 * item back, and the dict path formats it. */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    /* Set: data is this bytes object's, which becomes the result without a copy (lines()). */
    PyObject *bytes;
} Buffer;

static int
grow(Buffer *b, Py_ssize_t extra)
{
    Py_ssize_t cap = b->cap * 2;
    if (cap < b->len + extra) {
        cap = b->len + extra + 4096;
    }
    if (b->bytes != NULL) {
        if (_PyBytes_Resize(&b->bytes, cap) < 0) { /* freed it, and set it to NULL */
            b->data = NULL;
            return -1;
        }
        b->data = PyBytes_AS_STRING(b->bytes);
        b->cap = cap;
        return 0;
    }
    char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
reserve(Buffer *b, Py_ssize_t extra)
{
    return b->len + extra <= b->cap ? 0 : grow(b, extra);
}

static inline int
write_raw(Buffer *b, const char *text, Py_ssize_t size)
{
    if (reserve(b, size) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, text, size);
    b->len += size;
    return 0;
}

/* 1 for the bytes a JSON string escapes: '"', '\\' and the control characters. */
static unsigned char g_escaped[256];

/* A JSON string: its UTF-8, with '"', '\\' and the control characters escaped as orjson
 * does (\b \t \n \f \r, else \u00XX in lowercase hex).  Runs of bytes that need no
 * escape are copied whole.  1: written, 0: not plain, -1: error. */
static int
write_text(Buffer *b, PyObject *text)
{
    static const char digits[] = "0123456789abcdef";
    const char *utf8;
    Py_ssize_t size;
    if (!PyUnicode_CheckExact(text)) {
        return 0;
    }
    if (PyUnicode_IS_ASCII(text)) {
        utf8 = (const char *)PyUnicode_1BYTE_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
    }
    else if ((utf8 = PyUnicode_AsUTF8AndSize(text, &size)) == NULL) {
        PyErr_Clear(); /* lone surrogates: the Python path escapes them, counted */
        return 0;
    }
    if (reserve(b, size * 6 + 2) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t i = 0;
    while (i < size) {
        Py_ssize_t run = i;
        while (run < size && !g_escaped[(unsigned char)utf8[run]]) {
            run++;
        }
        memcpy(out, utf8 + i, run - i);
        out += run - i;
        if (run == size) {
            break;
        }
        unsigned char c = (unsigned char)utf8[run];
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = digits[c >> 4];
            *out++ = digits[c & 0xF];
        }
        i = run + 1;
    }
    *out++ = '"';
    b->len = out - b->data;
    return 1;
}

/* The wire names as JSON (`"name":`), made by setup(): a key is written by one memcpy.
 * Found by the str's address, which setup()'s names keep alive. */
#define KEY_SLOTS 64
static struct {
    PyObject *key;
    Py_ssize_t len;
    char text[64];
} g_key_text[KEY_SLOTS];

/* The same names as msgpack str (fixstr: a wire name is short ASCII), for the msgpack writer. */
static struct {
    PyObject *key;
    Py_ssize_t len;
    char text[32];
} g_mp_key[KEY_SLOTS];

static inline Py_ssize_t
key_slot(PyObject *key)
{
    return (Py_ssize_t)(((uintptr_t)key >> 4) % KEY_SLOTS);
}

/* A key and its colon.  1: written, 0: not plain, -1: error. */
static int
write_key(Buffer *b, PyObject *key)
{
    Py_ssize_t slot = key_slot(key);
    if (g_key_text[slot].key == key) {
        return write_raw(b, g_key_text[slot].text, g_key_text[slot].len) < 0 ? -1 : 1;
    }
    int done = write_text(b, key);
    if (done <= 0) {
        return done;
    }
    return write_raw(b, ":", 1) < 0 ? -1 : 1;
}

/* Fills g_key_text for the wire names (after setup() set them).  -1 on error. */
static int
key_texts(PyObject **const *names, size_t count)
{
    memset(g_key_text, 0, sizeof(g_key_text));
    memset(g_mp_key, 0, sizeof(g_mp_key));
    for (int c = 0; c < 256; c++) {
        g_escaped[c] = c < 0x20 || c == '"' || c == '\\';
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *key = *names[i];
        Buffer b = {NULL, 0, 0};
        if (write_key(&b, key) < 0) {
            PyMem_Free(b.data);
            return -1;
        }
        Py_ssize_t slot = key_slot(key);
        if (g_key_text[slot].key == NULL && b.len <= (Py_ssize_t)sizeof(g_key_text[slot].text)) {
            g_key_text[slot].key = key; /* a collision: that one is written the long way */
            g_key_text[slot].len = b.len;
            memcpy(g_key_text[slot].text, b.data, b.len);
        }
        PyMem_Free(b.data);
        Py_ssize_t n = PyUnicode_GET_LENGTH(key);
        if (g_mp_key[slot].key == NULL && PyUnicode_IS_ASCII(key) && n < 32) { /* a fixstr */
            g_mp_key[slot].key = key;
            g_mp_key[slot].len = n + 1;
            g_mp_key[slot].text[0] = (char)(0xa0 | n);
            memcpy(g_mp_key[slot].text + 1, PyUnicode_1BYTE_DATA(key), n);
        }
    }
    return 0;
}

static const double g_pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

/* A float that is a short decimal (12.5, 0.25, 1200.0: most metric values) written
 * without repr()'s shortest-digits search, whose bignum arithmetic costs ~1.8k
 * instructions a float.  When m / 10**k gives back exactly |d| for an integer m below
 * 10**15 (k <= 8 fraction digits, both exact doubles, so the division rounds as strtod
 * would), that decimal round-trips; two decimals of at most 15 significant digits never
 * read as the same double (DBL_DIG), so no shorter one does: it is repr's.  Within
 * 1e-4 <= |d| < 1e15 repr writes it without an exponent.  1: written, 0: not such a
 * float (the caller writes it the long way), -1: error. */
static int
write_short_decimal(Buffer *b, double d)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15)) {
        return 0;
    }
    for (int k = 0; k < (int)(sizeof(g_pow10) / sizeof(g_pow10[0])); k++) {
        double m = nearbyint(a * g_pow10[k]);
        if (m >= 1e15) {
            return 0;
        }
        if (m / g_pow10[k] != a) {
            continue;
        }
        char digits[24];
        int count = 0;
        for (uint64_t n = (uint64_t)m; n != 0 || count <= k; n /= 10) {
            digits[count++] = (char)('0' + n % 10); /* least significant first; at least k + 1 */
        }
        char text[40];
        Py_ssize_t size = 0;
        if (d < 0) {
            text[size++] = '-';
        }
        for (int i = count - 1; i >= k; i--) {
            text[size++] = digits[i];
        }
        text[size++] = '.';
        if (k == 0) {
            text[size++] = '0';
        }
        for (int i = k - 1; i >= 0; i--) {
            text[size++] = digits[i];
        }
        return write_raw(b, text, size) < 0 ? -1 : 1;
    }
    return 0;
}

/* A finite float as orjson writes it: Python's repr() (the same shortest digits), but a
 * small exponent as orjson has it: 1e-05 is 0.00001, 1.5e-07 is 1.5e-7 (a test holds the
 * two equal over all floats).  1: written, -1: error. */
static int
write_float(Buffer *b, double d)
{
    int shortcut = write_short_decimal(b, d);
    if (shortcut != 0) {
        return shortcut;
    }
    char *repr = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (repr == NULL) {
        return -1;
    }
    char text[40];
    Py_ssize_t size = 0;
    const char *e = strchr(repr, 'e');
    if (e == NULL || e[1] == '+') {
        size = (Py_ssize_t)strlen(repr);
        memcpy(text, repr, size);
    }
    else {
        const char *exponent = e + 2;
        while (*exponent == '0') {
            exponent++;
        }
        if (strcmp(exponent, "5") == 0) { /* [-]d[.ddd]e-05 -> [-]0.0000d[ddd] */
            const char *p = repr;
            if (*p == '-') {
                text[size++] = *p++;
            }
            memcpy(text + size, "0.0000", 6);
            size += 6;
            for (; p < e; p++) {
                if (*p != '.') {
                    text[size++] = *p;
                }
            }
        }
        else { /* [-]d[.ddd]e-0k -> [-]d[.ddd]e-k */
            size = e - repr;
            memcpy(text, repr, size);
            text[size++] = 'e';
            text[size++] = '-';
            Py_ssize_t digits = (Py_ssize_t)strlen(exponent);
            memcpy(text + size, exponent, digits);
            size += digits;
        }
    }
    PyMem_Free(repr);
    return write_raw(b, text, size) < 0 ? -1 : 1;
}

/* A number: an exact int within int64, or a finite float.  1: written, 0: not plain,
 * -1: error. */
static int
write_number(Buffer *b, PyObject *value)
{
    char text[32];
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        char *end = text + sizeof(text), *p = end;
        unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (n < 0) {
            *--p = '-';
        }
        return write_raw(b, p, end - p) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(value) && isfinite(PyFloat_AS_DOUBLE(value))) {
        return write_float(b, PyFloat_AS_DOUBLE(value));
    }
    return 0;
}

/* One wire value: text, a number, a list of text (tags) or a map of text to text or numbers
 * (fields, metrics).  1, 0 or -1. */
static inline __attribute__((always_inline)) int
write_value(Buffer *b, PyObject *value)
{
    int done;
    if (PyUnicode_CheckExact(value)) {
        return write_text(b, value);
    }
    if (PyDict_CheckExact(value)) {
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        char sep = '{';
        while (PyDict_Next(value, &pos, &key, &item)) {
            if (write_raw(b, &sep, 1) < 0) {
                return -1;
            }
            sep = ',';
            if ((done = write_key(b, key)) <= 0) {
                return done;
            }
            done = PyUnicode_CheckExact(item) ? write_text(b, item) : write_number(b, item);
            if (done <= 0) {
                return done;
            }
        }
        return write_raw(b, sep == '{' ? "{}" : "}", sep == '{' ? 2 : 1) < 0 ? -1 : 1;
    }
    if (PyList_CheckExact(value)) {
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (write_raw(b, "[", 1) < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if ((i > 0 && write_raw(b, ",", 1) < 0)) {
                return -1;
            }
            if ((done = write_text(b, PyList_GET_ITEM(value, i))) <= 0) {
                return done;
            }
        }
        return write_raw(b, "]", 1) < 0 ? -1 : 1;
    }
    return write_number(b, value);
}

/* Text or a number (no container).  1, 0 or -1. */
static int
write_number_or_text(Buffer *b, PyObject *value)
{
    return PyUnicode_CheckExact(value) ? write_text(b, value) : write_number(b, value);
}

/* floor(a / b) for b > 0, as Python's //. */
static inline long long
floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && a < 0);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars) of milliseconds since the epoch, as
 * eventlog._builtin.formats.iso_millis writes it (days to a civil date: H. Hinnant's).
 * An Event's time is within int64 ns (1677 to 2262), inside the years iso_millis clamps to. */
static void
iso_millis(char *out, long long millis)
{
    long long seconds = floor_div(millis, 1000), days = floor_div(seconds, 86400);
    long long rest = seconds - days * 86400, z = days + 719468;
    long long era = floor_div(z, 146097), doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    long long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    long long year = yoe + era * 400 + (month <= 2);
    long long parts[7] = {year, month, day, rest / 3600, rest / 60 % 60, rest % 60, millis - seconds * 1000};
    int widths[7] = {4, 2, 2, 2, 2, 2, 3};
    const char *after = "--T::.Z";
    for (int i = 0; i < 7; i++) {
        for (int j = widths[i] - 1; j >= 0; j--) {
            out[j] = (char)('0' + parts[i] % 10);
            parts[i] /= 10;
        }
        out += widths[i];
        *out++ = after[i];
    }
}

/* The three writers below (JSON line, msgpack map, ECS document) share their id's handling
 * and their way out.  The id's 32 characters are drawn when the rest of the event is written
 * (a writer that gives up must not have drawn one): id_room() writes ``head``, leaves room
 * for them and writes ``tail``, and gives their offset (-1 on error); id_drawn() draws the id
 * into that room (-1 on error); event_undone() puts ``b`` back as it was and gives what the
 * writer returns: -1 for an error, 0 for an event it does not take. */
static Py_ssize_t
id_room(Buffer *b, const char *head, Py_ssize_t head_len, const char *tail, Py_ssize_t tail_len)
{
    if (write_raw(b, head, head_len) < 0 || reserve(b, 32 + tail_len) < 0) {
        return -1;
    }
    Py_ssize_t at = b->len;
    b->len += 32;
    memcpy(b->data + b->len, tail, tail_len);
    b->len += tail_len;
    return at;
}

static int
id_drawn(Buffer *b, Wire *wire, Py_ssize_t at, const char *node, PyObject *next_seq, char *drawn)
{
    if (draw_id(wire, drawn, node, next_seq) < 0) {
        return -1;
    }
    memcpy(b->data + at, drawn, 32);
    return 0;
}

static int
event_undone(Buffer *b, Py_ssize_t start, int done)
{
    b->len = start;
    return done < 0 || PyErr_Occurred() ? -1 : 0;
}

/* One event as a JSON line at the end of ``b`` (Logstash's two keys first when ``stamp``).
 * A drawn id's 32 chars go to ``drawn`` too.  1: written, 0: not plain (``b`` as it was,
 * no id drawn), -1: error. */
static int
write_line(Buffer *b, Wire *wire, PyObject *stamp, const char *node, PyObject *next_seq, char *drawn)
{
    Py_ssize_t start = b->len, id_at = -1;
    int done = 1;
    if (stamp != NULL) {
        /* {"@timestamp":"<iso>","@version":"1", */
        char iso[24];
        iso_millis(iso, wire->millis);
        if (write_raw(b, "{", 1) < 0 || write_text(b, PyTuple_GET_ITEM(stamp, 0)) <= 0 ||
            write_raw(b, ":\"", 2) < 0 || write_raw(b, iso, 24) < 0 || write_raw(b, "\",", 2) < 0 ||
            write_text(b, PyTuple_GET_ITEM(stamp, 1)) <= 0 || write_raw(b, ":", 1) < 0 ||
            write_text(b, PyTuple_GET_ITEM(stamp, 2)) <= 0 || write_raw(b, ",", 1) < 0) {
            goto failed;
        }
    }
    else if (write_raw(b, "{", 1) < 0) {
        goto failed;
    }
    for (Py_ssize_t i = 0; i < wire->n; i++) {
        if ((i > 0 && write_raw(b, ",", 1) < 0) || write_key(b, wire->keys[i]) <= 0) {
            goto failed;
        }
        if (wire->values[i] == NULL) { /* the id, drawn when the rest is written */
            if ((id_at = id_room(b, "\"", 1, "\"", 1)) < 0) {
                goto failed;
            }
            continue;
        }
        if ((done = write_value(b, wire->values[i])) <= 0) {
            goto failed;
        }
    }
    if (write_raw(b, "}\n", 2) < 0) {
        goto failed;
    }
    if (id_at >= 0 && id_drawn(b, wire, id_at, node, next_seq, drawn) < 0) {
        done = -1;
        goto failed;
    }
    return 1;
failed:
    return event_undone(b, start, done);
}

/* Writes one walked event at the end of a Buffer: 1 written, 0 not plain (the buffer as it
 * was, no id drawn), -1 error.  ``how`` is the writer's own argument (Logstash's stamp, the
 * msgpack writer's time bounds). */
typedef int (*EventWriter)(Buffer *b, Wire *wire, const void *how, const char *node, PyObject *next_seq,
                           char *drawn);

/* format() of the walked item's wire dict (its id drawn now), at the end of ``b``.  1, or 0
 * (format() refused it: the Python path decides; an error cleared). */
static int
write_formatted(Buffer *b, Wire *wire, PyObject *format, const char *node, PyObject *next_seq)
{
    PyObject *dict = wire_dict(wire, node, next_seq);
    PyObject *payload = dict == NULL ? NULL : PyObject_CallOneArg(format, dict);
    Py_XDECREF(dict);
    int done = payload != NULL && PyBytes_CheckExact(payload) &&
               write_raw(b, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)) == 0;
    Py_XDECREF(payload);
    if (!done) {
        PyErr_Clear();
    }
    return done;
}

/* The payloads of the items, back to back, without a wire dict: (body, ids, actions, times,
 * holes, sizes).  ``ids``, ``actions``, ``times`` and ``sizes`` are each event's Record fields
 * and payload length (None for an item not written), ``holes`` the (index, offset in body) of
 * each item the Python path must write, in order (eventlog.plugin.ItemsEncoder).  With
 * ``fallback`` (the formatter's format()), an item the walk takes and the writer does not is
 * written by format() of its wire dict, in its turn: its id is drawn in order, as the
 * wire-dict path draws it. */
/* Inlined into each caller, whose writer is then a constant the compiler inlines in turn (a
 * call through the pointer, and write_value no longer inlined into write_line, cost the JSON
 * lines ~300 instructions an event, callgrind). */
static inline __attribute__((always_inline)) PyObject *
write_batch(PyObject *items, PyObject *stat, int with_context, const char *node, PyObject *next_seq,
            EventWriter write, const void *how, PyObject *fallback)
{
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *ids = PyList_New(n), *actions = PyList_New(n), *times = PyList_New(n);
    PyObject *sizes = PyList_New(n); /* each payload's length: the spool stores rows without splitting */
    PyObject *holes = PyList_New(0), *result = NULL;
    /* Written straight into the bytes object it returns (copying a flood's batch into one at
     * the end cost ~400 instructions an event, callgrind). */
    Buffer b = {NULL, 0, n * 400 + 64, PyBytes_FromStringAndSize(NULL, n * 400 + 64)};
    Wire wire;
    wire.n = 0;
    wire.share = 1;
    if (ids == NULL || actions == NULL || times == NULL || sizes == NULL || holes == NULL || b.bytes == NULL) {
        goto done;
    }
    b.data = PyBytes_AS_STRING(b.bytes);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        Py_ssize_t start = b.len;
        char drawn[32];
        int ok = item_fields(&wire, item, stat, with_context);
        if (ok > 0) {
            ok = write(&b, &wire, how, node, next_seq, drawn);
            if (ok == 0 && fallback != NULL) {
                ok = write_formatted(&b, &wire, fallback, node, next_seq);
            }
        }
        PyObject *id = NULL, *time = NULL, *size = NULL;
        if (ok > 0) {
            id = wire.values[0] != NULL ? Py_NewRef(wire.values[0])
                                        : PyUnicode_FromStringAndSize(drawn, 32);
            time = PyLong_FromLongLong(wire.time_ns);
            size = PyLong_FromSsize_t(b.len - start);
            if (id == NULL || time == NULL || size == NULL) {
                Py_XDECREF(id);
                Py_XDECREF(time);
                Py_XDECREF(size);
                wire_clear(&wire);
                Py_DECREF(item);
                goto done;
            }
            PyList_SET_ITEM(ids, i, id);
            PyList_SET_ITEM(actions, i, Py_NewRef(wire.action));
            PyList_SET_ITEM(times, i, time);
            PyList_SET_ITEM(sizes, i, size);
        }
        wire_clear(&wire);
        Py_DECREF(item);
        if (ok <= 0) {
            if (b.data == NULL) { /* the buffer could not grow (and is gone): no memory */
                if (!PyErr_Occurred()) {
                    PyErr_NoMemory();
                }
                goto done;
            }
            PyErr_Clear(); /* an unexpected error: the Python path decides */
            PyList_SET_ITEM(ids, i, Py_NewRef(Py_None));
            PyList_SET_ITEM(actions, i, Py_NewRef(Py_None));
            PyList_SET_ITEM(times, i, Py_NewRef(Py_None));
            PyList_SET_ITEM(sizes, i, Py_NewRef(Py_None));
            PyObject *hole = Py_BuildValue("(nn)", i, b.len);
            if (hole == NULL || PyList_Append(holes, hole) < 0) {
                Py_XDECREF(hole);
                goto done;
            }
            Py_DECREF(hole);
        }
    }
    if (_PyBytes_Resize(&b.bytes, b.len) == 0) {
        result = Py_BuildValue("(NOOOOO)", b.bytes, ids, actions, times, holes, sizes);
        b.bytes = NULL; /* the result's now (or freed with it, on an error) */
    }
done:
    Py_XDECREF(b.bytes);
    Py_XDECREF(ids);
    Py_XDECREF(actions);
    Py_XDECREF(times);
    Py_XDECREF(sizes);
    Py_XDECREF(holes);
    return result;
}

static int
write_json(Buffer *b, Wire *wire, const void *how, const char *node, PyObject *next_seq, char *drawn)
{
    return write_line(b, wire, (PyObject *)how, node, next_seq, drawn);
}

/* lines(items, static, with_context, node, next_seq, stamp) -> (body, ids, actions, times, holes,
 * sizes): the JSON lines of the items (write_batch).  ``stamp`` is None, or Logstash's
 * (timestamp key, version key, version). */
static PyObject *
lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int with_context;
    const char *node;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "lines(items, static, with_context, node, next_seq, stamp)");
        return NULL;
    }
    if (batch_args(args, &with_context, &node) < 0) {
        return NULL;
    }
    PyObject *stamp = args[5];
    if (stamp == Py_None) {
        stamp = NULL;
    }
    else if (!PyTuple_CheckExact(stamp) || PyTuple_GET_SIZE(stamp) != 3) {
        PyErr_SetString(PyExc_TypeError, "stamp must be None or (timestamp key, version key, version)");
        return NULL;
    }
    return write_batch(args[0], args[1], with_context, node, args[4], write_json, stamp, NULL);
}

/* ---- msgpack, byte for byte what msgpack.Packer(use_bin_type=True).pack(wire) writes for the
 * wire dict (the fluent plugin's msgpack format): a map of the wire fields in wire order, str as
 * UTF-8 str (fixstr, str8, str16, str32), ints in their smallest form, floats as float64, the
 * same values the JSON writer takes (anything else sends the item back). */

/* A header: ``fix`` | n when n < ``fix_max``, else the 16- or 32-bit form (``wide`` and wide + 1),
 * or the 8-bit form ``narrow`` when given (str8) and n < 256. */
static inline int
mp_header(Buffer *b, unsigned char fix, Py_ssize_t fix_max, int narrow, unsigned char wide, Py_ssize_t n)
{
    unsigned char head[5];
    Py_ssize_t size;
    if (n < fix_max) {
        head[0] = (unsigned char)(fix | n);
        size = 1;
    }
    else if (narrow >= 0 && n < 256) {
        head[0] = (unsigned char)narrow;
        head[1] = (unsigned char)n;
        size = 2;
    }
    else if (n < 65536) {
        head[0] = wide;
        head[1] = (unsigned char)(n >> 8);
        head[2] = (unsigned char)n;
        size = 3;
    }
    else {
        head[0] = (unsigned char)(wide + 1);
        for (int i = 0; i < 4; i++) {
            head[1 + i] = (unsigned char)((unsigned long long)n >> (24 - 8 * i));
        }
        size = 5;
    }
    return write_raw(b, (const char *)head, size);
}

/* A str.  1, 0 (not an exact str, or lone surrogates: the Python path escapes them), -1. */
static int
mp_text(Buffer *b, PyObject *text)
{
    const char *utf8;
    Py_ssize_t size;
    if (!PyUnicode_CheckExact(text)) {
        return 0;
    }
    if (PyUnicode_IS_ASCII(text)) {
        utf8 = (const char *)PyUnicode_1BYTE_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
    }
    else if ((utf8 = PyUnicode_AsUTF8AndSize(text, &size)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (size > 0xFFFFFFFFLL) {
        return 0;
    }
    return mp_header(b, 0xa0, 32, 0xd9, 0xda, size) < 0 || write_raw(b, utf8, size) < 0 ? -1 : 1;
}

/* An int64 in msgpack's smallest form: a fixint, else the unsigned forms for what is positive
 * and the signed ones for what is negative, as msgpack-c's pack_template does. */
static int
mp_int(Buffer *b, long long n)
{
    unsigned char head[9];
    Py_ssize_t size;
    unsigned long long u = (unsigned long long)n;
    if (n >= -32 && n < 128) {
        head[0] = (unsigned char)n;
        size = 1;
    }
    else if (n >= 0) {
        size = u < 256 ? 2 : u < 65536 ? 3 : u < 4294967296ULL ? 5 : 9;
        head[0] = size == 2 ? 0xcc : size == 3 ? 0xcd : size == 5 ? 0xce : 0xcf;
    }
    else {
        size = n >= -128 ? 2 : n >= -32768 ? 3 : n >= -2147483648LL ? 5 : 9;
        head[0] = size == 2 ? 0xd0 : size == 3 ? 0xd1 : size == 5 ? 0xd2 : 0xd3;
    }
    for (Py_ssize_t i = 1; i < size; i++) { /* big-endian */
        head[i] = (unsigned char)(u >> (8 * (size - 1 - i)));
    }
    return write_raw(b, (const char *)head, size);
}

/* An int64 or a finite float (a float64, big-endian).  1, 0 or -1. */
static int
mp_number(Buffer *b, PyObject *value)
{
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        return mp_int(b, n) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(value) && isfinite(PyFloat_AS_DOUBLE(value))) {
        double d = PyFloat_AS_DOUBLE(value);
        unsigned long long bits;
        unsigned char head[9];
        memcpy(&bits, &d, 8);
        head[0] = 0xcb;
        for (int i = 0; i < 8; i++) {
            head[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
        }
        return write_raw(b, (const char *)head, 9) < 0 ? -1 : 1;
    }
    return 0;
}

/* One wire value, of the kinds write_value takes: text, a number, a list of text (tags), a
 * map of text to text or numbers (fields, metrics).  1, 0 or -1. */
static int
mp_value(Buffer *b, PyObject *value)
{
    int done;
    if (PyUnicode_CheckExact(value)) {
        return mp_text(b, value);
    }
    if (PyDict_CheckExact(value)) {
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        if (mp_header(b, 0x80, 16, -1, 0xde, PyDict_GET_SIZE(value)) < 0) {
            return -1;
        }
        while (PyDict_Next(value, &pos, &key, &item)) {
            if ((done = mp_text(b, key)) <= 0) {
                return done;
            }
            done = PyUnicode_CheckExact(item) ? mp_text(b, item) : mp_number(b, item);
            if (done <= 0) {
                return done;
            }
        }
        return 1;
    }
    if (PyList_CheckExact(value)) {
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (mp_header(b, 0x90, 16, -1, 0xdc, n) < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if ((done = mp_text(b, PyList_GET_ITEM(value, i))) <= 0) {
                return done;
            }
        }
        return 1;
    }
    return mp_number(b, value);
}

/* The bounds of the msgpack format's tstamp (its EventTime's range): an event outside them is
 * written by the formatter's format() of its wire dict (write_batch's fallback), which clamps
 * and counts it. */
typedef struct {
    long long min_ms, max_ms;
} TimeBounds;

/* One event as a msgpack map at the end of ``b``: as write_line. */
static int
write_msgpack(Buffer *b, Wire *wire, const void *how, const char *node, PyObject *next_seq, char *drawn)
{
    const TimeBounds *bounds = how;
    Py_ssize_t start = b->len, id_at = -1;
    int done = 1;
    if (wire->millis < bounds->min_ms || wire->millis > bounds->max_ms) {
        return 0;
    }
    if (mp_header(b, 0x80, 16, -1, 0xde, wire->n) < 0) {
        goto failed;
    }
    for (Py_ssize_t i = 0; i < wire->n; i++) {
        PyObject *key = wire->keys[i];
        Py_ssize_t slot = key_slot(key);
        if (g_mp_key[slot].key == key) { /* a wire name: its bytes made at setup() */
            if (write_raw(b, g_mp_key[slot].text, g_mp_key[slot].len) < 0) {
                done = -1;
                goto failed;
            }
        }
        else if ((done = mp_text(b, key)) <= 0) {
            goto failed;
        }
        if (wire->values[i] == NULL) { /* the id (32 chars: a str8), drawn when the rest is written */
            if ((id_at = id_room(b, "\xd9\x20", 2, "", 0)) < 0) {
                goto failed;
            }
            continue;
        }
        if ((done = mp_value(b, wire->values[i])) <= 0) {
            goto failed;
        }
    }
    if (id_at >= 0 && id_drawn(b, wire, id_at, node, next_seq, drawn) < 0) {
        done = -1;
        goto failed;
    }
    return 1;
failed:
    return event_undone(b, start, done);
}

/* msgpack_records(format, min_ms, max_ms, items, static, with_context, node, next_seq) -> (body,
 * ids, actions, times, holes, sizes): the msgpack maps of the items (write_batch); an event whose
 * tstamp is outside [min_ms, max_ms], or a value the writer does not take, is written by
 * ``format`` of its wire dict. */
static PyObject *
msgpack_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int with_context;
    const char *node;
    TimeBounds bounds;
    if (nargs != 8 || !PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "msgpack_records(format, min_ms, max_ms, items, static, with_context, node, next_seq)");
        return NULL;
    }
    if ((bounds.min_ms = PyLong_AsLongLong(args[1])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((bounds.max_ms = PyLong_AsLongLong(args[2])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (batch_args(args + 3, &with_context, &node) < 0) {
        return NULL;
    }
    return write_batch(args[3], args[4], with_context, node, args[7], write_msgpack, &bounds, args[0]);
}

/* ---- ECS, byte for byte what eventlog._builtin.ecs.EcsFormatter.format() writes for the wire
 * dict (orjson of its document(): see that module for the mapping).  The common event only:
 * one with an exception, a pid that is no int64, a level name that is not ASCII, a key of its
 * fields or metrics that Elasticsearch could not map as it is (renamed there), or a value of
 * another kind goes back to the wire-dict way.  The formatter hands over its option-made
 * pieces (ecs.version, event.dataset, service), as JSON. */

typedef struct {
    PyObject *version, *dataset, *service; /* bytes: '"ecs.version":"..."', ',"dataset":...', ',"service":{...}' */
} EcsPieces;

/* A key of labels, eventlog.fields or eventlog.metrics that the formatter keeps as it is: text
 * with no '.', '*' or '\\' and something besides whitespace (ecs._needs_rename).  A key of
 * text beyond ASCII made only of whitespace is left to Python's str.strip(): 0. */
static int
ecs_plain_key(PyObject *key)
{
    const char *utf8;
    Py_ssize_t size;
    if (!PyUnicode_CheckExact(key) || (utf8 = PyUnicode_AsUTF8AndSize(key, &size)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    int seen = 0; /* an ASCII character that is not whitespace */
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c == '.' || c == '*' || c == '\\') {
            return 0;
        }
        /* str.strip()'s whitespace among ASCII: \t \n \v \f \r, \x1c-\x1f and space */
        if (c < 0x80 && !(c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))) {
            seen = 1;
        }
    }
    return seen;
}

/* {"key":value,...} of a dict's items whose value is text (``which`` 1), is not (0), or all
 * (-1), keys checked by ecs_plain_key.  1, 0 or -1. */
static int
ecs_map(Buffer *b, PyObject *values, int which)
{
    PyObject *key, *item;
    Py_ssize_t pos = 0;
    char sep = '{';
    int done;
    while (PyDict_Next(values, &pos, &key, &item)) {
        int text = PyUnicode_CheckExact(item);
        if (which >= 0 && text != which) {
            continue;
        }
        if (!ecs_plain_key(key)) {
            return 0;
        }
        if (write_raw(b, &sep, 1) < 0) {
            return -1;
        }
        sep = ',';
        if ((done = write_key(b, key)) <= 0) {
            return done;
        }
        done = text ? write_text(b, item) : write_number(b, item);
        if (done <= 0) {
            return done;
        }
    }
    return write_raw(b, sep == '{' ? "{}" : "}", sep == '{' ? 2 : 1) < 0 ? -1 : 1;
}

/* ,"name":{"inner":value} */
static int
ecs_named(Buffer *b, const char *name, const char *inner, PyObject *value)
{
    if (write_raw(b, ",\"", 2) < 0 || write_raw(b, name, strlen(name)) < 0 || write_raw(b, "\":{\"", 4) < 0 ||
        write_raw(b, inner, strlen(inner)) < 0 || write_raw(b, "\":", 2) < 0) {
        return -1;
    }
    int done = write_value(b, value);
    return done <= 0 ? done : write_raw(b, "}", 1) < 0 ? -1 : 1;
}

#define ECS_RAW(text) (write_raw(b, text, sizeof(text) - 1) < 0)

/* One event as an ECS document (a JSON line) at the end of ``b``: as write_line. */
static int
write_ecs(Buffer *b, Wire *wire, const void *how, const char *node, PyObject *next_seq, char *drawn)
{
    const EcsPieces *pieces = how;
    Py_ssize_t start = b->len, id_at = -1;
    int done = 1;
    PyObject *action = NULL, *target = NULL, *tg_type = NULL, *level = NULL, *level_name = NULL;
    PyObject *message = NULL, *tags = NULL, *fields = NULL, *metrics = NULL, *user = NULL, *req_id = NULL;
    PyObject *site = NULL, *host = NULL, *pid = NULL, *thread = NULL, *code_file = NULL, *code_line = NULL;
    PyObject *code_func = NULL, *trace_id = NULL, *span_id = NULL;
    int extras = 0; /* wire fields with no ECS place: eventlog.<name> */
    for (Py_ssize_t i = 1; i < wire->n; i++) { /* 0 is the id */
        PyObject *key = wire->keys[i], *value = wire->values[i];
        PyObject **slot = key == k_action      ? &action
                          : key == k_target    ? &target
                          : key == k_tgType    ? &tg_type
                          : key == k_level     ? &level
                          : key == k_levelName ? &level_name
                          : key == k_message   ? &message
                          : key == k_tags      ? &tags
                          : key == k_fields    ? &fields
                          : key == k_metrics   ? &metrics
                          : key == k_user      ? &user
                          : key == k_reqId     ? &req_id
                          : key == k_site      ? &site
                          : key == k_host      ? &host
                          : key == k_pid       ? &pid
                          : key == k_thread    ? &thread
                          : key == k_codeFile  ? &code_file
                          : key == k_codeLine  ? &code_line
                          : key == k_codeFunc  ? &code_func
                          : key == k_traceId   ? &trace_id
                          : key == k_spanId    ? &span_id
                                               : NULL;
        if (key == k_exc_info) {
            return 0; /* error.*: parsed from its JSON in Python */
        }
        if (key == k_tstamp) {
            continue;
        }
        if (slot == NULL) {
            if (!PyUnicode_CheckExact(value) && !PyFloat_CheckExact(value) && !PyLong_CheckExact(value)) {
                return 0; /* a bool is written 1/0 there (mappable_value), other kinds as they are */
            }
            extras = 1;
            continue;
        }
        *slot = value;
    }
    if (action == NULL || (pid != NULL && !int64(pid)) ||
        (level_name != NULL && !(PyUnicode_CheckExact(level_name) && PyUnicode_IS_ASCII(level_name)))) {
        return 0;
    }
    char iso[24];
    iso_millis(iso, wire->millis);
    if (ECS_RAW("{\"@timestamp\":\"") || write_raw(b, iso, 24) < 0 || ECS_RAW("\",\"log.level\":")) {
        goto failed;
    }
    if (level_name != NULL) {
        /* str.lower() of ASCII text, as JSON: the escapes orjson writes are lower case already,
         * so the letters are lowered after writing. */
        Py_ssize_t at = b->len;
        if ((done = write_text(b, level_name)) <= 0) {
            goto failed;
        }
        for (char *c = b->data + at; c < b->data + b->len; c++) {
            if (*c >= 'A' && *c <= 'Z') {
                *c = (char)(*c + ('a' - 'A'));
            }
        }
    }
    else if (ECS_RAW("\"info\"")) {
        goto failed;
    }
    if (message != NULL) {
        if (ECS_RAW(",\"message\":") || (done = write_value(b, message)) <= 0) {
            goto failed;
        }
    }
    if (ECS_RAW(",") || write_raw(b, PyBytes_AS_STRING(pieces->version), PyBytes_GET_SIZE(pieces->version)) < 0 ||
        ECS_RAW(",\"event\":{\"action\":") || (done = write_value(b, action)) <= 0 || ECS_RAW(",\"id\":")) {
        goto failed;
    }
    if (wire->values[0] == NULL) { /* the id, drawn when the rest is written */
        if ((id_at = id_room(b, "\"", 1, "\"", 1)) < 0) {
            goto failed;
        }
    }
    else if ((done = write_value(b, wire->values[0])) <= 0) {
        goto failed;
    }
    if (write_raw(b, PyBytes_AS_STRING(pieces->dataset), PyBytes_GET_SIZE(pieces->dataset)) < 0 || ECS_RAW("}")) {
        goto failed;
    }
    int logger = tg_type != NULL && target != NULL && PyUnicode_CheckExact(tg_type) &&
                 PyUnicode_CompareWithASCIIString(tg_type, "logger") == 0;
    int origin = code_file != NULL || code_line != NULL || code_func != NULL;
    if (logger || origin) {
        char sep = '{';
        if (ECS_RAW(",\"log\":")) {
            goto failed;
        }
        if (logger) {
            if (ECS_RAW("{\"logger\":") || (done = write_value(b, target)) <= 0) {
                goto failed;
            }
            sep = ',';
        }
        if (origin) {
            if (write_raw(b, &sep, 1) < 0 || ECS_RAW("\"origin\":")) {
                goto failed;
            }
            sep = '{';
            if (code_file != NULL || code_line != NULL) {
                if (ECS_RAW("{\"file\":")) {
                    goto failed;
                }
                char inner = '{';
                if (code_file != NULL) { /* its name: after the last '/', then the last '\\' */
                    if (!PyUnicode_CheckExact(code_file)) {
                        done = 0;
                        goto failed;
                    }
                    Py_ssize_t n;
                    const char *path = PyUnicode_AsUTF8AndSize(code_file, &n), *name = path;
                    if (path == NULL) {
                        PyErr_Clear();
                        done = 0;
                        goto failed;
                    }
                    for (Py_ssize_t i = 0; i < n; i++) {
                        if (path[i] == '/') {
                            name = path + i + 1;
                        }
                    }
                    for (const char *c = name; c < path + n; c++) {
                        if (*c == '\\') {
                            name = c + 1;
                        }
                    }
                    PyObject *base = PyUnicode_FromStringAndSize(name, path + n - name);
                    if (base == NULL || ECS_RAW("{\"name\":")) {
                        Py_XDECREF(base);
                        goto failed;
                    }
                    done = write_text(b, base);
                    Py_DECREF(base);
                    if (done <= 0) {
                        goto failed;
                    }
                    inner = ',';
                }
                if (code_line != NULL) {
                    if (write_raw(b, &inner, 1) < 0 || ECS_RAW("\"line\":") || (done = write_value(b, code_line)) <= 0) {
                        goto failed;
                    }
                }
                if (ECS_RAW("}")) {
                    goto failed;
                }
                sep = ',';
            }
            if (code_func != NULL) {
                if (write_raw(b, &sep, 1) < 0 || ECS_RAW("\"function\":") || (done = write_value(b, code_func)) <= 0) {
                    goto failed;
                }
            }
            if (ECS_RAW("}")) {
                goto failed;
            }
        }
        if (ECS_RAW("}")) {
            goto failed;
        }
    }
    if (write_raw(b, PyBytes_AS_STRING(pieces->service), PyBytes_GET_SIZE(pieces->service)) < 0 ||
        (host != NULL && (done = ecs_named(b, "host", "name", host)) <= 0)) {
        goto failed;
    }
    if (pid != NULL || thread != NULL) {
        if (ECS_RAW(",\"process\":{")) {
            goto failed;
        }
        if (pid != NULL && (ECS_RAW("\"pid\":") || (done = write_value(b, pid)) <= 0)) {
            goto failed;
        }
        if (thread != NULL) {
            if ((pid != NULL && ECS_RAW(",")) || ECS_RAW("\"thread\":{\"name\":") ||
                (done = write_value(b, thread)) <= 0 || ECS_RAW("}")) {
                goto failed;
            }
        }
        if (ECS_RAW("}")) {
            goto failed;
        }
    }
    if ((user != NULL && (done = ecs_named(b, "user", "name", user)) <= 0)) {
        goto failed;
    }
    if (req_id != NULL) {
        if (ECS_RAW(",\"http\":{\"request\":{\"id\":") || (done = write_value(b, req_id)) <= 0 || ECS_RAW("}}")) {
            goto failed;
        }
    }
    if ((site != NULL && (done = ecs_named(b, "organization", "name", site)) <= 0) ||
        (trace_id != NULL && (done = ecs_named(b, "trace", "id", trace_id)) <= 0) ||
        (span_id != NULL && (done = ecs_named(b, "span", "id", span_id)) <= 0)) {
        goto failed;
    }
    if (tags != NULL && !(PyList_CheckExact(tags) && PyList_GET_SIZE(tags) == 0)) {
        if (ECS_RAW(",\"tags\":") || (done = write_value(b, tags)) <= 0) {
            goto failed;
        }
    }
    /* fields: text under labels, the rest under eventlog.fields */
    Py_ssize_t texts = 0, field_count = 0;
    if (fields != NULL) {
        if (!PyDict_CheckExact(fields)) {
            done = 0;
            goto failed;
        }
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        while (PyDict_Next(fields, &pos, &key, &item)) {
            texts += PyUnicode_CheckExact(item);
        }
        field_count = PyDict_GET_SIZE(fields);
        if (texts > 0 && (ECS_RAW(",\"labels\":") || (done = ecs_map(b, fields, 1)) <= 0)) {
            goto failed;
        }
    }
    if (metrics != NULL && !PyDict_CheckExact(metrics)) {
        done = 0;
        goto failed;
    }
    /* The eventlog namespace, in document()'s order. */
    int own_target = !logger && (target != NULL || tg_type != NULL);
    int numbers = texts != field_count, has_metrics = metrics != NULL && PyDict_GET_SIZE(metrics) > 0;
    if (own_target || code_file != NULL || numbers || has_metrics || level != NULL || extras) {
        char sep = '{';
        if (ECS_RAW(",\"eventlog\":")) {
            goto failed;
        }
        PyObject *own[] = {own_target ? target : NULL, own_target ? tg_type : NULL, code_file};
        PyObject *own_keys[] = {k_target, k_tgType, k_codeFile};
        for (int i = 0; i < 3; i++) {
            if (own[i] == NULL) {
                continue;
            }
            if (write_raw(b, &sep, 1) < 0 || (done = write_key(b, own_keys[i])) <= 0 ||
                (done = write_value(b, own[i])) <= 0) {
                goto failed;
            }
            sep = ',';
        }
        if (numbers) {
            if (write_raw(b, &sep, 1) < 0 || (done = write_key(b, k_fields)) <= 0 || (done = ecs_map(b, fields, 0)) <= 0) {
                goto failed;
            }
            sep = ',';
        }
        if (has_metrics) {
            if (write_raw(b, &sep, 1) < 0 || (done = write_key(b, k_metrics)) <= 0 ||
                (done = ecs_map(b, metrics, -1)) <= 0) {
                goto failed;
            }
            sep = ',';
        }
        if (level != NULL) {
            if (write_raw(b, &sep, 1) < 0 || (done = write_key(b, k_level)) <= 0 || (done = write_value(b, level)) <= 0) {
                goto failed;
            }
            sep = ',';
        }
        /* The rest in wire order (session, cluster, trace flags: names no ECS field or key of
         * this namespace takes, so none is renamed). */
        for (Py_ssize_t i = 1; extras && i < wire->n; i++) {
            PyObject *key = wire->keys[i];
            if (key == k_id || key == k_tstamp || key == k_action || key == k_target || key == k_tgType ||
                key == k_level || key == k_levelName || key == k_message || key == k_tags || key == k_fields ||
                key == k_metrics || key == k_user || key == k_reqId || key == k_site || key == k_host ||
                key == k_pid || key == k_thread || key == k_codeFile || key == k_codeLine || key == k_codeFunc ||
                key == k_traceId || key == k_spanId) {
                continue;
            }
            if (!ecs_plain_key(key) || write_raw(b, &sep, 1) < 0 || (done = write_key(b, key)) <= 0 ||
                (done = write_number_or_text(b, wire->values[i])) <= 0) {
                if (done > 0) {
                    done = 0;
                }
                goto failed;
            }
            sep = ',';
        }
        if (ECS_RAW("}")) {
            goto failed;
        }
    }
    if (ECS_RAW("}\n")) {
        goto failed;
    }
    if (id_at >= 0 && id_drawn(b, wire, id_at, node, next_seq, drawn) < 0) {
        done = -1;
        goto failed;
    }
    return 1;
failed:
    return event_undone(b, start, done);
}
#undef ECS_RAW

/* ecs_records(format, version, dataset, service, items, static, with_context, node, next_seq)
 * -> (body, ids, actions, times, holes, sizes): the ECS documents of the items (write_batch);
 * ``version``, ``dataset`` and ``service`` are the formatter's JSON pieces (EcsPieces), and
 * what the writer does not take is written by ``format`` of its wire dict. */
static PyObject *
ecs_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int with_context;
    const char *node;
    if (nargs != 9 || !PyCallable_Check(args[0]) || !PyBytes_CheckExact(args[1]) || !PyBytes_CheckExact(args[2]) ||
        !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "ecs_records(format, version, dataset, service, items, static, with_context, node, "
                        "next_seq): version, dataset and service bytes");
        return NULL;
    }
    EcsPieces pieces = {args[1], args[2], args[3]};
    if (batch_args(args + 4, &with_context, &node) < 0) {
        return NULL;
    }
    return write_batch(args[4], args[5], with_context, node, args[8], write_ecs, &pieces, args[0]);
}

/* mp_number's bytes alone (None where it hands the value on), for the test that holds them to
 * msgpack's. */
static PyObject *
msgpack_number(PyObject *module, PyObject *value)
{
    Buffer b = {NULL, 0, 0};
    int done = mp_number(&b, value);
    PyObject *result = done < 0 ? NULL : done == 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    return result;
}

/* ---- The caller's side of Event(fields=..., metrics=...): a copy of a dict of str keys and
 * values of the types the worker may read later as they are (eventlog._records.text.KEPT:
 * str, int, float, bool, bytes, None), or None when any is not (the Python path converts).
 * About 20 instructions an item, where KEPT.issuperset(map(type, ...)) builds a set. */
static PyObject *
plain_copy(PyObject *module, PyObject *values)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    if (!PyDict_CheckExact(values)) {
        Py_RETURN_NONE;
    }
    while (PyDict_Next(values, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_RETURN_NONE;
        }
        PyTypeObject *kind = Py_TYPE(value);
        if (!(kind == &PyUnicode_Type || kind == &PyLong_Type || kind == &PyFloat_Type ||
              kind == &PyBool_Type || kind == &PyBytes_Type || value == Py_None)) {
            Py_RETURN_NONE;
        }
    }
    return PyDict_Copy(values);
}

/* ---- The caller's size estimate of an Event's tags, fields or metrics for the queue's byte
 * bound (eventlog._records.caps.text_bytes, whose pure-Python twin gives the same number):
 * each item, and each key of a dict, counts TEXT_ITEM_BYTES, plus its length if it is text
 * (str, a str subclass, bytes).  A few instructions an item, where the Python loop costs
 * ~4k for an Event's three. */
#define TEXT_ITEM_BYTES 16

static Py_ssize_t
one_text_bytes(PyObject *value)
{
    if (PyUnicode_Check(value)) {
        return TEXT_ITEM_BYTES + PyUnicode_GET_LENGTH(value);
    }
    if (PyBytes_Check(value)) {
        return TEXT_ITEM_BYTES + PyBytes_GET_SIZE(value);
    }
    return TEXT_ITEM_BYTES;
}

static PyObject *
text_bytes(PyObject *module, PyObject *values)
{
    Py_ssize_t total = 0;
    if (PyDict_Check(values)) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(values, &pos, &key, &value)) {
            total += one_text_bytes(key) + one_text_bytes(value);
        }
        return PyLong_FromSsize_t(total);
    }
    if (PyList_CheckExact(values) || PyTuple_CheckExact(values)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(values);
        PyObject **items = PySequence_Fast_ITEMS(values);
        for (Py_ssize_t i = 0; i < n; i++) {
            total += one_text_bytes(items[i]);
        }
        return PyLong_FromSsize_t(total);
    }
    PyObject *iterator = PyObject_GetIter(values);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        total += one_text_bytes(item);
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(total);
}

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *record_type, *actions, *level_names, *init_keys, *standard, *special, *empty;
    PyObject *wire_names = NULL, *event_type = NULL;
    Py_ssize_t max_message, max_value;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOOnnO|O", &PyType_Type, &record_type, &PyDict_Type, &actions,
                          &PyDict_Type, &level_names, &PyList_Type, &init_keys, &standard, &special,
                          &empty, &max_message, &max_value, &wire_names, &event_type)) {
        return NULL;
    }
    if (wire_names == NULL || !PyDict_Check(wire_names)) {
        PyErr_SetString(PyExc_TypeError, "wire_names must be schema.WIRE_NAMES (a dict)");
        return NULL;
    }
    /* The wire names come from the schema (eventlog._records.schema.WIRE_NAMES, by Event
     * attribute): no wire name is spelt in this file. */
    struct {
        PyObject **slot;
        const char *attr;
    } names[] = {
        {&k_id, "id"}, {&k_tstamp, "tstamp"}, {&k_action, "action"}, {&k_target, "target"},
        {&k_tgType, "tg_type"}, {&k_level, "level"}, {&k_levelName, "level_name"},
        {&k_message, "message"}, {&k_tags, "tags"}, {&k_metrics, "metrics"}, {&k_fields, "fields"},
        {&k_user, "user"}, {&k_session, "session"}, {&k_reqId, "request_id"},
        {&k_thread, "thread"}, {&k_codeFile, "code_file"}, {&k_codeLine, "code_line"},
        {&k_codeFunc, "code_func"}, {&k_exc_info, "exc_info"}, {&k_traceId, "trace_id"},
        {&k_spanId, "span_id"}, {&k_traceFlags, "trace_flags"}, {&k_site, "site"},
        {&k_cluster, "cluster"}, {&k_host, "host"}, {&k_pid, "pid"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        PyObject *wire = PyDict_GetItemString(wire_names, names[i].attr); /* borrowed */
        if (wire == NULL || !PyUnicode_CheckExact(wire)) {
            PyErr_Format(PyExc_KeyError, "wire_names has no str for %s", names[i].attr);
            return NULL;
        }
        Py_INCREF(wire);
        PyUnicode_InternInPlace(&wire);
        Py_XSETREF(*names[i].slot, wire);
    }
    {
        PyObject **const slots[] = {
            &k_id, &k_tstamp, &k_action, &k_target, &k_tgType, &k_level, &k_levelName, &k_message,
            &k_tags, &k_metrics, &k_fields, &k_user, &k_session, &k_reqId, &k_thread, &k_codeFile,
            &k_codeLine, &k_codeFunc, &k_exc_info, &k_traceId, &k_spanId, &k_traceFlags,
            &k_site, &k_cluster, &k_host, &k_pid,
        };
        if (key_texts(slots, sizeof(slots) / sizeof(slots[0])) < 0) {
            return NULL;
        }
    }
    if (event_type != NULL && event_type != Py_None && event_setup(event_type) < 0) {
        return NULL;
    }
    if (!PyAnySet_Check(standard) || !PyAnySet_Check(special)) {
        PyErr_SetString(PyExc_TypeError, "standard and special must be sets");
        return NULL;
    }
    Py_XSETREF(g_record_type, (PyTypeObject *)Py_NewRef(record_type));
    Py_XSETREF(g_actions, Py_NewRef(actions));
    Py_XSETREF(g_level_names, Py_NewRef(level_names));
    {
        /* Where each attribute the walk reads is among LogRecord.__init__'s. */
        PyObject *const wanted[A_COUNT] = {s_levelname, s_levelno, s_name, s_threadName, s_exc_info,
                                           s_exc_text, s_created, s_msecs, s_pathname, s_lineno,
                                           s_funcName};
        Py_ssize_t count = PyList_GET_SIZE(init_keys);
        int found = 0;
        if (count > MAX_INIT_KEYS) {
            PyErr_SetString(PyExc_ValueError, "init_keys: more than 64 attributes");
            return NULL;
        }
        memset(g_attr_at, -1, sizeof(g_attr_at));
        for (Py_ssize_t i = 0; i < count; i++) {
            for (int a = 0; a < A_COUNT; a++) {
                int same = PyObject_RichCompareBool(PyList_GET_ITEM(init_keys, i), wanted[a], Py_EQ);
                if (same < 0) {
                    return NULL;
                }
                if (same && g_attr_at[i] < 0) {
                    g_attr_at[i] = (signed char)a;
                    found++;
                }
            }
        }
        if (found != A_COUNT) {
            PyErr_SetString(PyExc_ValueError,
                            "init_keys lacks an attribute the walk reads (levelname ... funcName)");
            return NULL;
        }
    }
    Py_XSETREF(g_init_keys, Py_NewRef(init_keys));
    Py_XSETREF(g_standard, Py_NewRef(standard));
    Py_XSETREF(g_special, Py_NewRef(special));
    Py_XSETREF(g_empty, Py_NewRef(empty));
    g_max_message = max_message;
    g_max_value = max_value;
    Py_RETURN_NONE;
}

/* json_number(value) -> bytes or None: write_number alone, for the test that holds it to orjson. */
static PyObject *
json_number(PyObject *module, PyObject *value)
{
    Buffer b = {NULL, 0, 0};
    int done = write_number(&b, value);
    PyObject *result = done < 0 ? NULL : done == 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    return result;
}

/* iso_text(millis) -> str: iso_millis alone, for the test that holds it to the Python one. */
static PyObject *
iso_text(PyObject *module, PyObject *value)
{
    char text[24];
    long long millis = PyLong_AsLongLong(value);
    if (millis == -1 && PyErr_Occurred()) {
        return NULL;
    }
    iso_millis(text, millis);
    return PyUnicode_FromStringAndSize(text, 24);
}

static PyMethodDef methods[] = {
    {"iso_text", iso_text, METH_O, "iso_text(millis) -> the RFC 3339 text of an Event's millisecond"},
    {"json_number", json_number, METH_O, "json_number(value) -> the JSON bytes of an int64 or finite float, or None"},
    {"wires", (PyCFunction)(void (*)(void))wires, METH_FASTCALL,
     "wires(items, static, with_context, node, next_seq) -> (list of wire dict or None, holes)"},
    {"lines", (PyCFunction)(void (*)(void))lines, METH_FASTCALL,
     "lines(items, static, with_context, node, next_seq, stamp) -> (body, ids, actions, times, holes, sizes)"},
    {"msgpack_records", (PyCFunction)(void (*)(void))msgpack_records, METH_FASTCALL,
     "msgpack_records(format, min_ms, max_ms, items, static, with_context, node, next_seq) -> (body, ids, "
     "actions, times, holes, sizes)"},
    {"ecs_records", (PyCFunction)(void (*)(void))ecs_records, METH_FASTCALL,
     "ecs_records(format, version, dataset, service, items, static, with_context, node, next_seq) -> (body, ids, "
     "actions, times, holes, sizes)"},
    {"msgpack_number", msgpack_number, METH_O,
     "msgpack_number(value) -> the msgpack bytes of an int64 or finite float, or None"},
    {"plain_copy", plain_copy, METH_O,
     "plain_copy(values) -> a copy of a dict of str keys and str/int/float/bool/bytes/None values, or None"},
    {"text_bytes", text_bytes, METH_O,
     "text_bytes(values) -> 16 an item (and a dict's key) plus the length of those that are text"},
    {"setup", setup, METH_VARARGS, "setup(record_type, actions, level_names, init_keys, standard, special, "
                                   "empty_context, max_message, max_value, wire_names, event_type=None)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eventlog_speedups._wires", "Log records to eventlog wire dicts.", -1, methods,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__wires(void)
{
    if (intern(&s_levelname, "levelname") || intern(&s_levelno, "levelno") || intern(&s_name, "name") ||
        intern(&s_threadName, "threadName") || intern(&s_created, "created") ||
        intern(&s_msecs, "msecs") || intern(&s_exc_info, "exc_info") ||
        intern(&s_exc_text, "exc_text") || intern(&s_pathname, "pathname") ||
        intern(&s_lineno, "lineno") || intern(&s_funcName, "funcName") || intern(&s_logger, "logger") ||
        intern(&f_trace, "032x") || intern(&f_span, "016x") || intern(&f_flags, "02x")) {
        return NULL;
    }
    if ((g_sixty_four = PyLong_FromLong(64)) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    static WalkApi api = {item_fields, wire_clear, draw_id, batch_args, wire_dict};
    PyObject *capsule = PyCapsule_New(&api, WALK_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(module, "walk", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
