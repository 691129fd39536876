/* eventlog wire dict -> OTLP LogRecord protobuf bytes (eventlog-otlp's payload).
 *
 * The same bytes as eventlog_otlp.encoding.log_record, the reference: field for
 * field, in its order, with its conversions (a lone surrogate becomes "?", an
 * int past int64 its digits as a string, any other type "<TypeName>").  What
 * is not plain (a non-str action, id, message or field name, a level that is
 * not an int, fields that are not a dict, tags that are neither list nor tuple)
 * goes to the reference itself, whole, so there is one answer for the odd case.
 * Exception parsing and unusual trace ids call the reference's own helpers.
 *
 * Why C: the Python encoder is about half of the worker's instructions per
 * event (benchmarks/otlp_instructions.py); this writes into one buffer instead
 * of building and joining a bytes object per field.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_walk.h"

/* Set once by setup(). */
static PyObject *g_fallback, *g_exception_parts, *g_trace_bytes, *g_reserved, *g_user_prefix, *g_event_scope,
    *g_root_scope;

/* Wire keys. */
static PyObject *k_id, *k_action, *k_target, *k_tgType, *k_level, *k_levelName, *k_message,
    *k_metrics, *k_fields, *k_tags, *k_user, *k_session, *k_reqId, *k_thread, *k_codeFile,
    *k_codeLine, *k_codeFunc, *k_exc_info, *k_traceId, *k_spanId, *k_traceFlags, *s_logger,
    *s_log_prefix, *s_name, *k_host, *k_pid, *k_site, *k_cluster, *s_payload, *s_time_ns, *k_tstamp;

/* Where encode() reads an event's wire fields: a wire dict, or the fields of the walk
 * (_walk.h) already sorted by key (F_*), with no dict made. */
enum {
    F_ID, F_TSTAMP, F_ACTION, F_TARGET, F_TG_TYPE, F_LEVEL, F_LEVEL_NAME, F_MESSAGE, F_METRICS,
    F_FIELDS, F_TAGS, F_USER, F_SESSION, F_REQ_ID, F_THREAD, F_CODE_FILE, F_CODE_LINE,
    F_CODE_FUNC, F_EXC_INFO, F_TRACE_ID, F_SPAN_ID, F_TRACE_FLAGS, F_HOST, F_PID, F_SITE,
    F_CLUSTER, F_COUNT
};
static PyObject **const g_keys[F_COUNT] = {
    &k_id, &k_tstamp, &k_action, &k_target, &k_tgType, &k_level, &k_levelName, &k_message,
    &k_metrics, &k_fields, &k_tags, &k_user, &k_session, &k_reqId, &k_thread, &k_codeFile,
    &k_codeLine, &k_codeFunc, &k_exc_info, &k_traceId, &k_spanId, &k_traceFlags, &k_host, &k_pid,
    &k_site, &k_cluster,
};

typedef struct {
    PyObject *dict;              /* the wire dict, or NULL: fields */
    PyObject *fields[F_COUNT];   /* borrowed, NULL when absent (only without dict) */
    PyObject *id_placeholder;    /* the id to be drawn: its bytes are patched in later */
    Py_ssize_t id_at;            /* where they went in the buffer, or -1 */
} source;

/* wire[key] as PyDict_GetItemWithError gives it (borrowed; NULL when absent or on error). */
static inline PyObject *
raw(const source *s, int field)
{
    return s->dict != NULL ? PyDict_GetItemWithError(s->dict, *g_keys[field]) : s->fields[field];
}

/* Attribute names (KeyValue.key), as given to setup(): the order of ATTR_*. */
enum {
    ATTR_UID,
    ATTR_USER,
    ATTR_SESSION,
    ATTR_REQ_ID,
    ATTR_THREAD,
    ATTR_CODE_FILE,
    ATTR_CODE_LINE,
    ATTR_CODE_FUNC,
    ATTR_TARGET,
    ATTR_TARGET_TYPE,
    ATTR_TAGS,
    ATTR_EXC_TYPE,
    ATTR_EXC_MESSAGE,
    ATTR_EXC_STACK,
    ATTR_COUNT
};
static PyObject *g_attr[ATTR_COUNT];

#define OK 0
#define FAILED (-1)
#define ODD 1 /* not the plain case: the reference encodes this wire */

/* ---------------------------------------------------------------- the buffer */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char local[1024];
} buffer;

static int
reserve(buffer *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap) {
        return OK;
    }
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *data = b->data == b->local ? PyMem_Malloc(cap) : PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    if (b->data == b->local) {
        memcpy(data, b->local, b->len);
    }
    b->data = data;
    b->cap = cap;
    return OK;
}

static int
put(buffer *b, const void *bytes, Py_ssize_t n)
{
    if (reserve(b, n)) {
        return FAILED;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return OK;
}

static int
put_byte(buffer *b, unsigned char byte)
{
    if (reserve(b, 1)) {
        return FAILED;
    }
    b->data[b->len++] = (char)byte;
    return OK;
}

static int
varint_size(uint64_t value)
{
    int n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static void
write_varint(char *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out = (char)value;
}

static int
put_varint(buffer *b, uint64_t value)
{
    if (reserve(b, 10)) {
        return FAILED;
    }
    write_varint(b->data + b->len, value);
    b->len += varint_size(value);
    return OK;
}

/* A length-delimited field: tag, then a one-byte length slot; close() fills it in,
 * moving the content when the length takes more than one byte (rare: < 128 is usual). */
static Py_ssize_t
open_field(buffer *b, unsigned char tag)
{
    if (reserve(b, 2)) {
        return -1;
    }
    b->data[b->len++] = (char)tag;
    b->len++;
    return b->len;
}

static int
close_field(buffer *b, Py_ssize_t start)
{
    Py_ssize_t n = b->len - start;
    int extra = varint_size((uint64_t)n) - 1;
    if (extra) {
        if (reserve(b, extra)) {
            return FAILED;
        }
        memmove(b->data + start + extra, b->data + start, n);
        b->len += extra;
    }
    write_varint(b->data + start - 1, (uint64_t)n);
    return OK;
}

/* UTF-8 of a str, a lone surrogate as "?" (the reference's _utf8). */
static int
put_text(buffer *b, unsigned char tag, PyObject *text)
{
    Py_ssize_t n;
    const char *data = PyUnicode_AsUTF8AndSize(text, &n);
    if (data != NULL) {
        if (put_byte(b, tag) || put_varint(b, (uint64_t)n)) {
            return FAILED;
        }
        return put(b, data, n);
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        return FAILED;
    }
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "replace");
    if (encoded == NULL) {
        return FAILED;
    }
    n = PyBytes_GET_SIZE(encoded);
    int rc = put_byte(b, tag) || put_varint(b, (uint64_t)n) || put(b, PyBytes_AS_STRING(encoded), n);
    Py_DECREF(encoded);
    return rc ? FAILED : OK;
}

/* ---------------------------------------------------------------- AnyValue */

static int put_key_value(buffer *b, PyObject *key, PyObject *value);

/* The content of an AnyValue message holding value (the reference's any_value). */
static int
put_any_value(buffer *b, PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        return put_text(b, 0x0a, value);
    }
    if (PyBool_Check(value)) {
        return put(b, value == Py_True ? "\x10\x01" : "\x10\x00", 2);
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (n == -1 && PyErr_Occurred()) {
            return FAILED;
        }
        if (!overflow) {
            return put_byte(b, 0x18) || put_varint(b, (uint64_t)n) ? FAILED : OK;
        }
        PyObject *digits = PyObject_Str(value); /* past int64: its digits */
        if (digits == NULL) {
            return FAILED;
        }
        int rc = put_text(b, 0x0a, digits);
        Py_DECREF(digits);
        return rc;
    }
    if (PyFloat_CheckExact(value)) {
        char packed[8];
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), packed, 1) < 0) {
            return FAILED;
        }
        return put_byte(b, 0x21) || put(b, packed, 8) ? FAILED : OK;
    }
    if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
        if (Py_EnterRecursiveCall(" encoding an OTLP array")) {
            return FAILED;
        }
        int rc = FAILED;
        Py_ssize_t array = open_field(b, 0x2a);
        if (array < 0) {
            goto array_done;
        }
        /* By index, each item held: the list is the worker's own, but stay safe. */
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(value); i++) {
            PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(value, i));
            Py_ssize_t start = open_field(b, 0x0a);
            int failed = start < 0 || put_any_value(b, item) || close_field(b, start);
            Py_DECREF(item);
            if (failed) {
                goto array_done;
            }
        }
        rc = close_field(b, array);
    array_done:
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (PyDict_CheckExact(value)) {
        if (Py_EnterRecursiveCall(" encoding an OTLP key-value list")) {
            return FAILED;
        }
        int rc = FAILED;
        Py_ssize_t list = open_field(b, 0x32);
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        if (list < 0) {
            goto dict_done;
        }
        while (PyDict_Next(value, &pos, &key, &item)) {
            PyObject *name = PyObject_Str(key); /* str(k), as the reference */
            if (name == NULL) {
                goto dict_done;
            }
            Py_INCREF(item);
            Py_ssize_t start = open_field(b, 0x0a);
            int failed = start < 0 || put_key_value(b, name, item) || close_field(b, start);
            Py_DECREF(item);
            Py_DECREF(name);
            if (failed) {
                goto dict_done;
            }
        }
        rc = close_field(b, list);
    dict_done:
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (value == Py_None) {
        return OK;
    }
    /* No application code runs in the worker: the type's name stands in. */
    PyObject *type_name = PyObject_GetAttr((PyObject *)Py_TYPE(value), s_name);
    if (type_name == NULL) {
        return FAILED;
    }
    PyObject *shown = PyUnicode_FromFormat("<%S>", type_name);
    Py_DECREF(type_name);
    if (shown == NULL) {
        return FAILED;
    }
    int rc = put_text(b, 0x0a, shown);
    Py_DECREF(shown);
    return rc;
}

/* The content of a KeyValue message. */
static int
put_key_value(buffer *b, PyObject *key, PyObject *value)
{
    if (put_text(b, 0x0a, key)) {
        return FAILED;
    }
    Py_ssize_t start = open_field(b, 0x12);
    if (start < 0 || put_any_value(b, value) || close_field(b, start)) {
        return FAILED;
    }
    return OK;
}

/* One LogRecord.attributes field (6). */
static int
put_attribute(buffer *b, PyObject *key, PyObject *value)
{
    Py_ssize_t start = open_field(b, 0x32);
    if (start < 0 || put_key_value(b, key, value) || close_field(b, start)) {
        return FAILED;
    }
    return OK;
}

/* ---------------------------------------------------------------- the record */

/* value = wire.get(key) (borrowed, NULL when absent or None). */
static PyObject *
look(const source *s, int field)
{
    PyObject *value = raw(s, field);
    return value == Py_None ? NULL : value;
}

/* The reference's severity_number for an int level. */
static int
severity_number(PyObject *level, int *number)
{
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(level, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return FAILED;
    }
    if (overflow) {
        *number = overflow > 0 ? 24 : 0;
    } else if (n <= 0) {
        *number = 0;
    } else if (n < 10) {
        *number = n > 5 ? 1 + (int)(n - 5 < 3 ? n - 5 : 3) : 1;
    } else if (n > 53) {
        *number = 24;
    } else {
        int step = (int)(n % 10);
        *number = (int)(n / 10 - 1) * 4 + 5 + (step < 3 ? step : 3);
    }
    return OK;
}

static int
hex_digit(Py_UCS4 c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return (int)(c - 'A' + 10);
    }
    return -1;
}

/* out[size] from exactly 2*size hex digits; 0 when text is not that. */
static int
plain_hex(PyObject *text, unsigned char *out, Py_ssize_t size)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) != 2 * size) {
        return 0;
    }
    const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < size; i++) {
        int high = hex_digit(chars[2 * i]), low = hex_digit(chars[2 * i + 1]);
        if (high < 0 || low < 0) {
            return 0;
        }
        out[i] = (unsigned char)(high << 4 | low);
    }
    return 1;
}

static int
put_trace_fields(buffer *b, const unsigned char *trace, const unsigned char *span, unsigned int flags)
{
    unsigned char out[36] = {0x45, flags & 0xFF, 0, 0, 0, 0x4a, 0x10};
    memcpy(out + 7, trace, 16);
    out[23] = 0x52;
    out[24] = 0x08;
    memcpy(out + 25, span, 8);
    return put(b, out, 33);
}

/* flags, trace_id, span_id; well-formed ids of the usual shape here, anything else by
 * the reference's _trace_bytes (bytes.fromhex and int(x, 16) take more than hex digits). */
static int
put_trace(buffer *b, const source *src, PyObject *trace_id)
{
    unsigned char trace[16], span[8] = {0};
    PyObject *span_id = raw(src, F_SPAN_ID);
    PyObject *flags_text = span_id == NULL && PyErr_Occurred() ? NULL : raw(src, F_TRACE_FLAGS);
    if (PyErr_Occurred()) {
        return FAILED;
    }
    int usual = plain_hex(trace_id, trace, 16);
    if (usual && span_id != NULL && span_id != Py_None &&
        !(PyUnicode_CheckExact(span_id) && PyUnicode_GET_LENGTH(span_id) == 0)) {
        usual = plain_hex(span_id, span, 8);
    }
    unsigned int flags = 0;
    if (usual && flags_text != NULL && flags_text != Py_None &&
        !(PyUnicode_CheckExact(flags_text) && PyUnicode_GET_LENGTH(flags_text) == 0)) {
        unsigned char one;
        if (plain_hex(flags_text, &one, 1)) {
            flags = one;
        } else if (PyUnicode_CheckExact(flags_text) && PyUnicode_GET_LENGTH(flags_text) == 1 &&
                   hex_digit(PyUnicode_READ_CHAR(flags_text, 0)) >= 0) {
            flags = (unsigned int)hex_digit(PyUnicode_READ_CHAR(flags_text, 0));
        } else {
            usual = 0;
        }
    }
    if (usual) {
        return put_trace_fields(b, trace, span, flags);
    }
    if (src->dict == NULL) {
        return ODD; /* the reference reads the wire dict: let it have one */
    }
    PyObject *ids = PyObject_CallOneArg(g_trace_bytes, src->dict);
    if (ids == NULL) {
        return FAILED;
    }
    int rc = OK;
    if (ids != Py_None) {
        PyObject *t, *s, *f;
        if (!PyArg_ParseTuple(ids, "SSO!", &t, &s, &PyLong_Type, &f) || PyBytes_GET_SIZE(t) != 16 ||
            PyBytes_GET_SIZE(s) != 8) {
            PyErr_Clear();
            rc = ODD;
        } else {
            rc = put_trace_fields(b, (unsigned char *)PyBytes_AS_STRING(t),
                                  (unsigned char *)PyBytes_AS_STRING(s), (unsigned int)PyLong_AsLong(f));
        }
    }
    Py_DECREF(ids);
    return rc;
}

/* fields or metrics as attributes, renamed when eventlog writes that name; metrics
 * skip a name fields has (one value per key: the field's). */
static int
put_extras(buffer *b, PyObject *extras, PyObject *fields)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(extras, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name)) {
            return ODD;
        }
        if (fields != NULL) {
            int found = PyDict_Contains(fields, name);
            if (found) {
                if (found < 0) {
                    return FAILED;
                }
                continue;
            }
        }
        int reserved = PySet_Contains(g_reserved, name);
        if (reserved < 0) {
            return FAILED;
        }
        /* Both held while a nested value is encoded (str() of a nested key may run code). */
        Py_INCREF(name);
        Py_INCREF(value);
        int rc;
        if (reserved) {
            PyObject *renamed = PyUnicode_Concat(g_user_prefix, name);
            rc = renamed == NULL ? FAILED : put_attribute(b, renamed, value);
            Py_XDECREF(renamed);
        } else {
            rc = put_attribute(b, name, value);
        }
        Py_DECREF(value);
        Py_DECREF(name);
        if (rc) {
            return rc;
        }
    }
    return OK;
}

static int
encode(buffer *b, source *src)
{
    PyObject *action = raw(src, F_ACTION);
    if (action == NULL) {
        return PyErr_Occurred() ? FAILED : ODD; /* the reference's KeyError */
    }
    PyObject *target_type = look(src, F_TG_TYPE), *level = look(src, F_LEVEL);
    if (PyErr_Occurred()) {
        return FAILED;
    }
    if (!PyUnicode_CheckExact(action) || (target_type != NULL && !PyUnicode_CheckExact(target_type)) ||
        (level != NULL && !PyLong_CheckExact(level))) {
        return ODD;
    }
    /* severity_number, severity_text */
    if (level != NULL) {
        PyObject *level_name = raw(src, F_LEVEL_NAME);
        if (level_name == NULL || !PyUnicode_CheckExact(level_name)) {
            return PyErr_Occurred() ? FAILED : ODD;
        }
        int number;
        if (severity_number(level, &number)) {
            return FAILED;
        }
        if (number && (put_byte(b, 0x10) || put_byte(b, (unsigned char)number))) {
            return FAILED;
        }
        if (put_text(b, 0x1a, level_name)) {
            return FAILED;
        }
    }
    int is_log = 0;
    if (target_type != NULL) {
        int logger = PyUnicode_Compare(target_type, s_logger) == 0;
        is_log = logger && PyUnicode_Tailmatch(action, s_log_prefix, 0, PY_SSIZE_T_MAX, -1) == 1;
    }
    if (!is_log) {
        if (put_text(b, 0x62, action)) { /* event_name */
            return FAILED;
        }
        if (target_type != NULL && put_attribute(b, g_attr[ATTR_TARGET_TYPE], target_type)) {
            return FAILED;
        }
    }
    static const struct {
        int field;
        int attr;
    } site[] = {
        {F_THREAD, ATTR_THREAD},
        {F_CODE_FILE, ATTR_CODE_FILE},
        {F_CODE_FUNC, ATTR_CODE_FUNC},
        {F_CODE_LINE, ATTR_CODE_LINE},
    };
    for (size_t i = 0; i < sizeof site / sizeof site[0]; i++) {
        PyObject *value = look(src, site[i].field);
        if (value != NULL && put_attribute(b, g_attr[site[i].attr], value)) {
            return FAILED;
        }
        if (PyErr_Occurred()) {
            return FAILED;
        }
    }
    /* body */
    PyObject *message = look(src, F_MESSAGE);
    if (message != NULL) {
        if (!PyUnicode_CheckExact(message)) {
            return ODD;
        }
        Py_ssize_t start = open_field(b, 0x2a);
        if (start < 0 || put_text(b, 0x0a, message) || close_field(b, start)) {
            return FAILED;
        }
    }
    PyObject *event_id = raw(src, F_ID);
    if (event_id == NULL || !PyUnicode_CheckExact(event_id)) {
        return PyErr_Occurred() ? FAILED : ODD;
    }
    if (put_attribute(b, g_attr[ATTR_UID], event_id)) {
        return FAILED;
    }
    if (event_id == src->id_placeholder) { /* its 32 ASCII chars, the last bytes written */
        src->id_at = b->len - 32;
    }
    if (!is_log) {
        PyObject *target = look(src, F_TARGET);
        if (target != NULL && put_attribute(b, g_attr[ATTR_TARGET], target)) {
            return FAILED;
        }
    }
    static const struct {
        int field;
        int attr;
    } request[] = {{F_USER, ATTR_USER}, {F_SESSION, ATTR_SESSION}, {F_REQ_ID, ATTR_REQ_ID}};
    for (size_t i = 0; i < sizeof request / sizeof request[0]; i++) {
        PyObject *value = look(src, request[i].field);
        if (value != NULL && put_attribute(b, g_attr[request[i].attr], value)) {
            return FAILED;
        }
    }
    PyObject *fields = look(src, F_FIELDS), *metrics = look(src, F_METRICS), *tags = look(src, F_TAGS);
    if (PyErr_Occurred()) {
        return FAILED;
    }
    /* Only dicts (and falsy nothing) here: the reference takes anything else. */
    if ((fields != NULL && !PyDict_CheckExact(fields)) || (metrics != NULL && !PyDict_CheckExact(metrics))) {
        return ODD;
    }
    if (fields != NULL && PyDict_GET_SIZE(fields) == 0) {
        fields = NULL;
    }
    if (metrics != NULL && PyDict_GET_SIZE(metrics) == 0) {
        metrics = NULL;
    }
    int rc;
    if (fields != NULL && (rc = put_extras(b, fields, NULL))) {
        return rc;
    }
    if (metrics != NULL && (rc = put_extras(b, metrics, fields))) {
        return rc;
    }
    if (tags != NULL) {
        if (!PyList_CheckExact(tags) && !PyTuple_CheckExact(tags)) {
            return ODD;
        }
        if (PySequence_Fast_GET_SIZE(tags) > 0) {
            int taken = (fields != NULL && PyDict_Contains(fields, g_attr[ATTR_TAGS])) ||
                        (metrics != NULL && PyDict_Contains(metrics, g_attr[ATTR_TAGS]));
            if (PyErr_Occurred()) {
                return FAILED;
            }
            if (!taken) {
                /* list(tags): a tuple's items are written as the list's would be */
                Py_INCREF(tags);
                PyObject *as_list = PySequence_List(tags);
                Py_DECREF(tags);
                rc = as_list == NULL ? FAILED : put_attribute(b, g_attr[ATTR_TAGS], as_list);
                Py_XDECREF(as_list);
                if (rc) {
                    return rc;
                }
            }
        }
    }
    PyObject *exc_info = look(src, F_EXC_INFO);
    if (exc_info != NULL) {
        PyObject *parts = PyObject_CallOneArg(g_exception_parts, exc_info);
        if (parts == NULL) {
            return FAILED;
        }
        if (!PyTuple_CheckExact(parts) || PyTuple_GET_SIZE(parts) != 3) {
            Py_DECREF(parts);
            return ODD;
        }
        for (int i = 0; i < 3; i++) {
            PyObject *part = PyTuple_GET_ITEM(parts, i);
            if (part != Py_None && put_attribute(b, g_attr[ATTR_EXC_TYPE + i], part)) {
                Py_DECREF(parts);
                return FAILED;
            }
        }
        Py_DECREF(parts);
    }
    PyObject *trace_id = look(src, F_TRACE_ID);
    if (trace_id != NULL) {
        return put_trace(b, src, trace_id);
    }
    return PyErr_Occurred() ? FAILED : OK;
}

static void
buffer_init(buffer *b)
{
    b->data = b->local;
    b->len = 0;
    b->cap = sizeof b->local;
}

static void
buffer_free(buffer *b)
{
    if (b->data != b->local) {
        PyMem_Free(b->data);
    }
}

static PyObject *
log_record(PyObject *module, PyObject *wire)
{
    if (g_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._otlp.setup() was not called");
        return NULL;
    }
    if (!PyDict_CheckExact(wire)) {
        return PyObject_CallOneArg(g_fallback, wire);
    }
    buffer b;
    buffer_init(&b);
    Py_INCREF(wire); /* held for the call: a callback must not free it under us */
    source src = {.dict = wire, .id_at = -1};
    int rc = encode(&b, &src);
    PyObject *out;
    if (rc == OK) {
        out = PyBytes_FromStringAndSize(b.data, b.len);
    } else if (rc == ODD) {
        out = PyObject_CallOneArg(g_fallback, wire);
    } else {
        out = NULL;
    }
    Py_DECREF(wire);
    buffer_free(&b);
    return out;
}

/* ---------------------------------------------------------------- the payload */

/* The scope's name (borrowed), as OtlpFormatter.format finds it; NULL: not plain. */
static PyObject *
scope_name(const source *src)
{
    PyObject *action = raw(src, F_ACTION);
    PyObject *target_type = action == NULL ? NULL : look(src, F_TG_TYPE);
    if (action == NULL || PyErr_Occurred() || !PyUnicode_CheckExact(action) ||
        (target_type != NULL && !PyUnicode_CheckExact(target_type))) {
        return NULL;
    }
    if (target_type == NULL || PyUnicode_Compare(target_type, s_logger) != 0 ||
        PyUnicode_Tailmatch(action, s_log_prefix, 0, PY_SSIZE_T_MAX, -1) != 1) {
        return g_event_scope;
    }
    PyObject *target = look(src, F_TARGET);
    if (target == NULL) {
        return PyErr_Occurred() ? NULL : g_root_scope;
    }
    if (!PyUnicode_CheckExact(target)) {
        return NULL;
    }
    return PyUnicode_GET_LENGTH(target) ? target : g_root_scope;
}

/* The envelope's head (encoding.HEAD: kind 1 = protobuf, len(resource key), len(scope), as
 * big-endian u32), then the resource key and the scope. */
static int
put_head(buffer *b, PyObject *resource, PyObject *scope)
{
    Py_ssize_t resource_len = PyBytes_GET_SIZE(resource), scope_len = PyBytes_GET_SIZE(scope);
    unsigned char head[9] = {1,
                             (unsigned char)(resource_len >> 24), (unsigned char)(resource_len >> 16),
                             (unsigned char)(resource_len >> 8), (unsigned char)resource_len,
                             (unsigned char)(scope_len >> 24), (unsigned char)(scope_len >> 16),
                             (unsigned char)(scope_len >> 8), (unsigned char)scope_len};
    return put(b, head, 9) || put(b, PyBytes_AS_STRING(resource), resource_len) ||
                   put(b, PyBytes_AS_STRING(scope), scope_len)
               ? FAILED
               : OK;
}

/* payload(scopes, last_resource, format, wire): OtlpFormatter.format for http/protobuf.
 * scopes: the formatter's name -> scope bytes; last_resource: [host, pid, site, cluster,
 * resource key] of the last event its own format saw.  A scope not cached yet, another
 * process identity, or an odd wire: format(wire), which fills the caches. */
static PyObject *
payload(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PyList_CheckExact(args[1]) ||
        PyList_GET_SIZE(args[1]) != 5) {
        PyErr_SetString(PyExc_TypeError, "payload(scopes: dict, last_resource: list of 5, format, wire)");
        return NULL;
    }
    PyObject *scopes = args[0], *last = args[1], *format = args[2], *wire = args[3];
    if (g_fallback == NULL || !PyDict_CheckExact(wire)) {
        return PyObject_CallOneArg(format, wire);
    }
    source src = {.dict = wire, .id_at = -1};
    PyObject *name = scope_name(&src);
    PyObject *scope = name == NULL ? NULL : PyDict_GetItemWithError(scopes, name);
    if (scope == NULL || !PyBytes_CheckExact(scope)) {
        return PyErr_Occurred() ? NULL : PyObject_CallOneArg(format, wire);
    }
    PyObject *keys[4] = {k_host, k_pid, k_site, k_cluster};
    for (int i = 0; i < 4; i++) {
        PyObject *value = PyDict_GetItemWithError(wire, keys[i]);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            value = Py_None;
        }
        if (value != PyList_GET_ITEM(last, i)) {
            return PyObject_CallOneArg(format, wire);
        }
    }
    PyObject *resource = PyList_GET_ITEM(last, 4);
    if (!PyBytes_CheckExact(resource)) {
        return PyObject_CallOneArg(format, wire);
    }
    buffer b;
    buffer_init(&b);
    Py_INCREF(wire);
    Py_INCREF(scope);
    Py_INCREF(resource);
    int rc = put_head(&b, resource, scope) ? FAILED : encode(&b, &src);
    PyObject *out;
    if (rc == OK) {
        out = PyBytes_FromStringAndSize(b.data, b.len);
    } else if (rc == ODD) {
        out = PyObject_CallOneArg(format, wire);
    } else {
        out = NULL;
    }
    Py_DECREF(resource);
    Py_DECREF(scope);
    Py_DECREF(wire);
    buffer_free(&b);
    return out;
}

/* ---------------------------------------------------------------- a batch, no wire dicts */

/* _wires.c's walk, borrowed at setup(); NULL: envelopes() declines every batch. */
static WalkApi *g_walk;
/* Stands for the id still to be drawn while a record is encoded: 32 chars, patched after. */
static PyObject *g_id_placeholder;

/* The F_* index of a wire key: by identity (the walk's keys are the interned wire names),
 * searched from ``hint`` on since the walk gives them in about F_* order; by value for a
 * key that is another str object; -1 for a key encode() does not read. */
static int
field_of(PyObject *key, int hint)
{
    for (int i = 0; i < F_COUNT; i++) {
        int f = (hint + i) % F_COUNT;
        if (*g_keys[f] == key) {
            return f;
        }
    }
    if (PyUnicode_CheckExact(key)) {
        for (int f = 0; f < F_COUNT; f++) {
            if (PyUnicode_Compare(key, *g_keys[f]) == 0) {
                return f;
            }
        }
    }
    return -1;
}

/* One walked event's envelope at the end of b, as payload() writes it for the wire dict the
 * walk would have made.  1: written, 0: not plain or not cached yet (format() of its wire
 * dict writes it, and fills the caches), -1: error.  identity: [host, pid, site, cluster,
 * resource key] of the formatter. */
static int
walked_envelope(buffer *b, Wire *wire, PyObject *scopes, PyObject *const *identity, Py_ssize_t *id_at)
{
    source src = {.dict = NULL, .id_placeholder = g_id_placeholder, .id_at = -1};
    memset(src.fields, 0, sizeof src.fields);
    int hint = 0;
    for (Py_ssize_t i = 0; i < wire->n; i++) {
        int f = field_of(wire->keys[i], hint);
        if (f >= 0) {
            /* the walk leaves the id NULL when it is still to be drawn */
            src.fields[f] = wire->values[i] != NULL ? wire->values[i] : g_id_placeholder;
            hint = f + 1;
        }
    }
    PyObject *name = scope_name(&src);
    PyObject *scope = name == NULL ? NULL : PyDict_GetItemWithError(scopes, name);
    if (scope == NULL || !PyBytes_CheckExact(scope)) {
        return PyErr_Occurred() ? -1 : 0;
    }
    static const int process[4] = {F_HOST, F_PID, F_SITE, F_CLUSTER};
    for (int i = 0; i < 4; i++) {
        PyObject *value = src.fields[process[i]];
        if ((value != NULL ? value : Py_None) != identity[i]) {
            return 0;
        }
    }
    if (!PyBytes_CheckExact(identity[4])) {
        return 0;
    }
    Py_ssize_t start = b->len;
    int rc = put_head(b, identity[4], scope) ? FAILED : encode(b, &src);
    if (rc == OK && src.fields[F_ID] == g_id_placeholder && src.id_at < 0) {
        rc = ODD; /* not reached: encode() writes the id of every plain record */
    }
    if (rc != OK) {
        b->len = start;
        return rc == ODD ? 0 : -1;
    }
    *id_at = src.id_at;
    return 1;
}

/* envelopes(scopes, last_resource, format, items, static, with_context, node, next_seq)
 *     -> (body, ids, actions, times, holes, sizes), or None
 *
 * The formatter's payloads of a whole batch, back to back in body, straight from the queued
 * items (_wires.c's walk, no wire dict, no format() call): what the engine's Encoder reads
 * from a formatter's ``encode_items``.  ids, actions and times are each event's Record
 * fields and sizes each payload's length (None at a hole); holes the (index, offset in body)
 * of each item the walk does not take, left to the engine's wire-dict way (as wires() leaves
 * them).  A walked item this cannot write (a scope or process identity not cached yet, a
 * value only the reference encodes) gets its wire dict here and format(): the same id, at the
 * same turn, as the wire-dict way.  None: no walk here (the engine takes the wire-dict way
 * for the whole batch). */
static PyObject *
envelopes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyDict_CheckExact(args[0]) || !PyList_CheckExact(args[1]) ||
        PyList_GET_SIZE(args[1]) != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "envelopes(scopes: dict, last_resource: list of 5, format, items, static, with_context, "
                        "node, next_seq)");
        return NULL;
    }
    if (g_walk == NULL || g_fallback == NULL || g_id_placeholder == NULL) {
        Py_RETURN_NONE;
    }
    int with_context;
    const char *node;
    if (g_walk->batch_args(args + 3, &with_context, &node) < 0) {
        if (PyErr_ExceptionMatches(PyExc_RuntimeError)) { /* _wires.setup() not called */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    PyObject *scopes = args[0], *last = args[1], *format = args[2], *items = args[3], *stat = args[4],
             *next_seq = args[7];
    PyObject *identity[5]; /* held: format() replaces the list's items */
    for (int i = 0; i < 5; i++) {
        identity[i] = Py_NewRef(PyList_GET_ITEM(last, i));
    }
    Py_INCREF(scopes);
    Py_INCREF(last);
    Py_INCREF(format);
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *ids = PyList_New(n), *actions = PyList_New(n), *times = PyList_New(n), *sizes = PyList_New(n);
    PyObject *holes = PyList_New(0), *result = NULL;
    buffer b;
    buffer_init(&b);
    Wire wire;
    wire.n = 0;
    wire.share = 1;
    if (ids == NULL || actions == NULL || times == NULL || sizes == NULL || holes == NULL ||
        reserve(&b, n * 256 + 64)) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        Py_ssize_t start = b.len, id_at = -1;
        int ok = g_walk->item_fields(&wire, item, stat, with_context);
        PyObject *id = NULL, *time = NULL, *size = NULL;
        if (ok > 0 && (ok = walked_envelope(&b, &wire, scopes, identity, &id_at)) == 0) {
            /* Walked but not written here: format() of its wire dict, the engine's way. */
            PyObject *dict = g_walk->wire_dict(&wire, node, next_seq);
            PyObject *payload = dict == NULL ? NULL : PyObject_CallOneArg(format, dict);
            if (payload != NULL && PyBytes_CheckExact(payload) &&
                put(&b, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)) == OK) {
                id = Py_NewRef(wire.values[0]);
                time = PyLong_FromLongLong(wire.time_ns);
                size = time == NULL ? NULL : PyLong_FromSsize_t(b.len - start);
                ok = size == NULL ? -1 : 1;
                if (ok < 0) {
                    Py_CLEAR(id);
                    Py_CLEAR(time);
                }
            } else {
                /* format() refused it (a poison event): the engine's wire-dict way sets it
                 * aside, counted; an Event keeps the id drawn here. */
                ok = 0;
            }
            Py_XDECREF(payload);
            Py_XDECREF(dict);
            /* format() filled the caches: the next items find the identity it saw. */
            for (int k = 0; k < 5; k++) {
                Py_SETREF(identity[k], Py_NewRef(PyList_GET_ITEM(last, k)));
            }
        } else if (ok > 0) {
            char drawn[32];
            if (wire.values[0] != NULL) {
                id = Py_NewRef(wire.values[0]);
            } else if (g_walk->draw_id(&wire, drawn, node, next_seq) == 0) {
                memcpy(b.data + id_at, drawn, 32);
                id = PyUnicode_FromStringAndSize(drawn, 32);
            }
            time = id == NULL ? NULL : PyLong_FromLongLong(wire.time_ns);
            size = time == NULL ? NULL : PyLong_FromSsize_t(b.len - start);
            if (size == NULL) {
                Py_XDECREF(id);
                Py_XDECREF(time);
                ok = -1;
            }
        }
        if (ok > 0) {
            PyList_SET_ITEM(ids, i, id);
            PyList_SET_ITEM(actions, i, Py_NewRef(wire.action));
            PyList_SET_ITEM(times, i, time);
            PyList_SET_ITEM(sizes, i, size);
        }
        g_walk->wire_clear(&wire);
        Py_DECREF(item);
        if (ok <= 0) {
            PyErr_Clear(); /* an unexpected error: the wire-dict way decides */
            b.len = start;
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
    {
        PyObject *body = PyBytes_FromStringAndSize(b.data, b.len);
        if (body != NULL) {
            result = Py_BuildValue("(NOOOOO)", body, ids, actions, times, holes, sizes);
        }
    }
done:
    buffer_free(&b);
    Py_XDECREF(ids);
    Py_XDECREF(actions);
    Py_XDECREF(times);
    Py_XDECREF(sizes);
    Py_XDECREF(holes);
    Py_DECREF(scopes);
    Py_DECREF(last);
    Py_DECREF(format);
    for (int i = 0; i < 5; i++) {
        Py_DECREF(identity[i]);
    }
    return result;
}

/* ---------------------------------------------------------------- the request */

#define MAX_GROUPS 64

typedef struct {
    const char *data;
    Py_ssize_t len;
    int resource; /* for a scope: its resource's index */
} piece;

static int
find_group(piece *groups, int *count, const char *data, Py_ssize_t len, int resource)
{
    for (int i = 0; i < *count; i++) {
        if (groups[i].len == len && groups[i].resource == resource && memcmp(groups[i].data, data, len) == 0) {
            return i;
        }
    }
    if (*count == MAX_GROUPS) {
        return -1;
    }
    groups[*count] = (piece){data, len, resource};
    return (*count)++;
}

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
le64(unsigned char *out, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(value >> (8 * i));
    }
}

/* encoding._time of a Record's time_ns: 0 .. 2**64-1, else 0.  -1: not an int (no body). */
static int
time_value(PyObject *time_ns, uint64_t *out)
{
    if (!PyLong_CheckExact(time_ns)) {
        return -1;
    }
    int overflow = 0;
    unsigned long long t = 0;
    long long signed_t = PyLong_AsLongLongAndOverflow(time_ns, &overflow);
    if (overflow > 0) {
        t = PyLong_AsUnsignedLongLong(time_ns);
        if (t == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            t = 0;
        }
    } else if (overflow == 0 && signed_t > 0) {
        t = (unsigned long long)signed_t;
    }
    *out = t;
    return 0;
}

/* The ExportLogsServiceRequest of n envelopes (data[i], size[i]) with their times: bytes, or
 * None when one is no protobuf envelope that fits, or past MAX_GROUPS resources and scopes. */
static PyObject *
build_request(Py_ssize_t n, const char *const *data_of, const Py_ssize_t *size_of, const uint64_t *times,
              PyObject *resource_of)
{
    int *group_of = PyMem_Calloc(n ? n : 1, sizeof(int));
    piece resources[MAX_GROUPS], scopes[MAX_GROUPS];
    int resource_count = 0, scope_count = 0;
    PyObject *out = NULL, *messages[MAX_GROUPS] = {NULL};
    buffer b;
    buffer_init(&b);
    if (group_of == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (size_of[i] < 9) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        const unsigned char *data = (const unsigned char *)data_of[i];
        uint64_t resource_len = be32(data + 1), scope_len = be32(data + 5);
        if (data[0] != 1 || 9 + resource_len + scope_len > (uint64_t)size_of[i]) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        int resource = find_group(resources, &resource_count, (const char *)data + 9, (Py_ssize_t)resource_len, 0);
        int scope = resource < 0 ? -1
                                 : find_group(scopes, &scope_count, (const char *)data + 9 + resource_len,
                                              (Py_ssize_t)scope_len, resource);
        if (scope < 0) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        group_of[i] = scope;
    }
    for (int r = 0; r < resource_count; r++) {
        PyObject *key = PyBytes_FromStringAndSize(resources[r].data, resources[r].len);
        if (key == NULL) {
            goto done;
        }
        messages[r] = PyObject_CallOneArg(resource_of, key);
        Py_DECREF(key);
        if (messages[r] == NULL) {
            goto done;
        }
        if (!PyBytes_Check(messages[r])) {
            PyErr_SetString(PyExc_TypeError, "resource() must return bytes");
            goto done;
        }
    }
    for (int r = 0; r < resource_count; r++) {
        Py_ssize_t resource_logs = open_field(&b, 0x0a);
        Py_ssize_t resource_message = resource_logs < 0 ? -1 : open_field(&b, 0x0a);
        if (resource_message < 0 || put(&b, PyBytes_AS_STRING(messages[r]), PyBytes_GET_SIZE(messages[r])) ||
            close_field(&b, resource_message)) {
            goto done;
        }
        for (int s = 0; s < scope_count; s++) {
            if (scopes[s].resource != r) {
                continue;
            }
            Py_ssize_t scope_logs = open_field(&b, 0x12);
            Py_ssize_t scope_message = scope_logs < 0 ? -1 : open_field(&b, 0x0a);
            if (scope_message < 0 || put(&b, scopes[s].data, scopes[s].len) || close_field(&b, scope_message)) {
                goto done;
            }
            for (Py_ssize_t i = 0; i < n; i++) {
                if (group_of[i] != s) {
                    continue;
                }
                const char *data = data_of[i];
                Py_ssize_t start = 9 + be32((const unsigned char *)data + 1) + be32((const unsigned char *)data + 5);
                Py_ssize_t record_len = size_of[i] - start;
                unsigned char times_field[18] = {0x09};
                le64(times_field + 1, times[i]);
                times_field[9] = 0x59;
                le64(times_field + 10, times[i]);
                if (put_byte(&b, 0x12) || put_varint(&b, (uint64_t)(record_len + 18)) ||
                    put(&b, times_field, 18) || put(&b, data + start, record_len)) {
                    goto done;
                }
            }
            if (close_field(&b, scope_logs)) {
                goto done;
            }
        }
        if (close_field(&b, resource_logs)) {
            goto done;
        }
    }
    out = PyBytes_FromStringAndSize(b.data, b.len);
done:
    for (int r = 0; r < resource_count; r++) {
        Py_XDECREF(messages[r]);
    }
    PyMem_Free(group_of);
    buffer_free(&b);
    return out;
}

/* request_body(records, resource): encoding.request_body(PROTOBUF, entries, resource) of the
 * records' (time_ns, envelope) when every payload is a protobuf envelope that fits; None
 * otherwise (the transport's own loop says why), or past MAX_GROUPS resources and scopes. */
static PyObject *
request_body(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "request_body(records, resource)");
        return NULL;
    }
    PyObject *records = PySequence_Fast(args[0], "records must be a sequence");
    if (records == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(records);
    PyObject **payloads = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    const char **data_of = PyMem_Calloc(n ? n : 1, sizeof(char *));
    Py_ssize_t *size_of = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    uint64_t *times = PyMem_Calloc(n ? n : 1, sizeof(uint64_t));
    PyObject *out = NULL;
    if (payloads == NULL || data_of == NULL || size_of == NULL || times == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *record = PySequence_Fast_GET_ITEM(records, i);
        PyObject *payload = PyObject_GetAttr(record, s_payload);
        if (payload == NULL) {
            goto done;
        }
        payloads[i] = payload; /* owned: released at the end */
        PyObject *time_ns = PyObject_GetAttr(record, s_time_ns);
        if (time_ns == NULL) {
            goto done;
        }
        int odd = time_value(time_ns, &times[i]);
        Py_DECREF(time_ns);
        if (odd || !PyBytes_CheckExact(payload)) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        data_of[i] = PyBytes_AS_STRING(payload);
        size_of[i] = PyBytes_GET_SIZE(payload);
    }
    out = build_request(n, data_of, size_of, times, args[1]);
done:
    if (payloads != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_XDECREF(payloads[i]);
        }
    }
    PyMem_Free(payloads);
    PyMem_Free(data_of);
    PyMem_Free(size_of);
    PyMem_Free(times);
    Py_DECREF(records);
    return out;
}

/* request_of(body, sizes, times, resource): request_body of the envelopes that lie back to
 * back in body (an EncodedBatch that envelopes() wrote), with no Record made.  None as
 * request_body, and when the sizes do not cover body exactly. */
static PyObject *
request_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_CheckExact(args[0]) || !PyList_CheckExact(args[1]) || !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "request_of(body: bytes, sizes: list, times: list, resource)");
        return NULL;
    }
    PyObject *body = args[0], *sizes = args[1], *time_list = args[2];
    Py_ssize_t n = PyList_GET_SIZE(sizes);
    if (PyList_GET_SIZE(time_list) != n) {
        Py_RETURN_NONE;
    }
    const char **data_of = PyMem_Calloc(n ? n : 1, sizeof(char *));
    Py_ssize_t *size_of = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    uint64_t *times = PyMem_Calloc(n ? n : 1, sizeof(uint64_t));
    PyObject *out = NULL;
    if (data_of == NULL || size_of == NULL || times == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(body); /* the lists are the batch's own; body is read to the end */
    const char *data = PyBytes_AS_STRING(body);
    Py_ssize_t at = 0, total = PyBytes_GET_SIZE(body);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *size = PyList_GET_ITEM(sizes, i);
        Py_ssize_t len = PyLong_CheckExact(size) ? PyLong_AsSsize_t(size) : -1;
        if (len < 0 || len > total - at || time_value(PyList_GET_ITEM(time_list, i), &times[i])) {
            PyErr_Clear();
            out = Py_NewRef(Py_None);
            goto release;
        }
        data_of[i] = data + at;
        size_of[i] = len;
        at += len;
    }
    out = at == total ? build_request(n, data_of, size_of, times, args[3]) : Py_NewRef(Py_None);
release:
    Py_DECREF(body);
done:
    PyMem_Free(data_of);
    PyMem_Free(size_of);
    PyMem_Free(times);
    return out;
}

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *fallback, *exception_parts, *trace_bytes, *reserved, *user_prefix, *names, *event_scope,
        *root_scope, *wire_names;
    if (!PyArg_ParseTuple(args, "OOOO!UO!UUO!", &fallback, &exception_parts, &trace_bytes, &PyFrozenSet_Type,
                          &reserved, &user_prefix, &PyTuple_Type, &names, &event_scope, &root_scope,
                          &PyDict_Type, &wire_names)) {
        return NULL;
    }
    /* The wire names come from the schema (eventlog.plugin.FIELDS, by Event attribute): no wire
     * name is spelt in this file. */
    struct {
        PyObject **slot;
        const char *attr;
    } wire_keys[] = {
        {&k_id, "id"}, {&k_action, "action"}, {&k_target, "target"}, {&k_tgType, "tg_type"},
        {&k_level, "level"}, {&k_levelName, "level_name"}, {&k_message, "message"},
        {&k_metrics, "metrics"}, {&k_fields, "fields"}, {&k_tags, "tags"}, {&k_user, "user"},
        {&k_session, "session"}, {&k_reqId, "request_id"}, {&k_thread, "thread"},
        {&k_codeFile, "code_file"}, {&k_codeLine, "code_line"}, {&k_codeFunc, "code_func"},
        {&k_exc_info, "exc_info"}, {&k_traceId, "trace_id"}, {&k_spanId, "span_id"},
        {&k_traceFlags, "trace_flags"}, {&k_host, "host"}, {&k_pid, "pid"}, {&k_site, "site"},
        {&k_cluster, "cluster"}, {&k_tstamp, "tstamp"},
    };
    for (size_t i = 0; i < sizeof(wire_keys) / sizeof(wire_keys[0]); i++) {
        PyObject *wire = PyDict_GetItemString(wire_names, wire_keys[i].attr); /* borrowed */
        if (wire == NULL || !PyUnicode_CheckExact(wire)) {
            PyErr_Format(PyExc_KeyError, "wire_names has no str for %s", wire_keys[i].attr);
            return NULL;
        }
        Py_INCREF(wire);
        PyUnicode_InternInPlace(&wire);
        Py_XSETREF(*wire_keys[i].slot, wire);
    }
    if (PyTuple_GET_SIZE(names) != ATTR_COUNT) {
        PyErr_Format(PyExc_ValueError, "setup() needs %d attribute names, got %zd", ATTR_COUNT,
                     PyTuple_GET_SIZE(names));
        return NULL;
    }
    for (int i = 0; i < ATTR_COUNT; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "attribute names must be str");
            return NULL;
        }
    }
    for (int i = 0; i < ATTR_COUNT; i++) {
        Py_XSETREF(g_attr[i], Py_NewRef(PyTuple_GET_ITEM(names, i)));
    }
    Py_XSETREF(g_exception_parts, Py_NewRef(exception_parts));
    Py_XSETREF(g_trace_bytes, Py_NewRef(trace_bytes));
    Py_XSETREF(g_reserved, Py_NewRef(reserved));
    Py_XSETREF(g_user_prefix, Py_NewRef(user_prefix));
    Py_XSETREF(g_event_scope, Py_NewRef(event_scope));
    Py_XSETREF(g_root_scope, Py_NewRef(root_scope));
    Py_XSETREF(g_fallback, Py_NewRef(fallback));
    /* _wires.c's walk for envelopes(); an older _wires without it leaves envelopes() off. */
    g_walk = PyCapsule_Import(WALK_CAPSULE, 0);
    if (g_walk == NULL) {
        PyErr_Clear();
    }
    if (g_id_placeholder == NULL) {
        g_id_placeholder = PyUnicode_FromString("00000000000000000000000000000000");
        if (g_id_placeholder == NULL) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"log_record", log_record, METH_O, "log_record(wire) -> the LogRecord message, without its time fields"},
    {"setup", setup, METH_VARARGS,
     "setup(log_record, exception_parts, trace_bytes, reserved, user_prefix, names, event_scope, root_scope, "
     "wire_names)"},
    {"payload", (PyCFunction)(void (*)(void))payload, METH_FASTCALL,
     "payload(scopes, last_resource, format, wire) -> OtlpFormatter.format(wire) for http/protobuf"},
    {"request_body", (PyCFunction)(void (*)(void))request_body, METH_FASTCALL,
     "request_body(records, resource) -> ExportLogsServiceRequest bytes, or None"},
    {"request_of", (PyCFunction)(void (*)(void))request_of, METH_FASTCALL,
     "request_of(body, sizes, times, resource) -> request_body of the envelopes back to back in body, or None"},
    {"envelopes", (PyCFunction)(void (*)(void))envelopes, METH_FASTCALL,
     "envelopes(scopes, last_resource, items, static, with_context, node, next_seq) -> (body, ids, actions, "
     "times, holes, sizes), or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eventlog_speedups._otlp", "eventlog wire dicts to OTLP LogRecord bytes.", -1,
    methods,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__otlp(void)
{
    /* The wire names (k_*) are set by setup(), from the schema. */
    if (intern(&s_logger, "logger") || intern(&s_log_prefix, "log.") || intern(&s_name, "__name__") ||
        intern(&s_payload, "payload") || intern(&s_time_ns, "time_ns")) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
