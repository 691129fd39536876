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

/* Set once by setup(). */
static PyObject *g_fallback, *g_exception_parts, *g_trace_bytes, *g_reserved, *g_user_prefix, *g_event_scope,
    *g_root_scope;

/* Wire keys. */
static PyObject *k_id, *k_action, *k_target, *k_tgType, *k_level, *k_levelName, *k_message,
    *k_metrics, *k_fields, *k_tags, *k_user, *k_session, *k_reqId, *k_thread, *k_codeFile,
    *k_codeLine, *k_codeFunc, *k_exc_info, *k_traceId, *k_spanId, *k_traceFlags, *s_logger,
    *s_log_prefix, *s_name, *k_host, *k_pid, *k_site, *k_cluster, *s_payload, *s_time_ns;

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
get(PyObject *wire, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(wire, key);
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
put_trace(buffer *b, PyObject *wire, PyObject *trace_id)
{
    unsigned char trace[16], span[8] = {0};
    PyObject *span_id = PyDict_GetItemWithError(wire, k_spanId);
    PyObject *flags_text = span_id == NULL && PyErr_Occurred() ? NULL : PyDict_GetItemWithError(wire, k_traceFlags);
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
    PyObject *ids = PyObject_CallOneArg(g_trace_bytes, wire);
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
encode(buffer *b, PyObject *wire)
{
    PyObject *action = PyDict_GetItemWithError(wire, k_action);
    if (action == NULL) {
        return PyErr_Occurred() ? FAILED : ODD; /* the reference's KeyError */
    }
    PyObject *target_type = get(wire, k_tgType), *level = get(wire, k_level);
    if (PyErr_Occurred()) {
        return FAILED;
    }
    if (!PyUnicode_CheckExact(action) || (target_type != NULL && !PyUnicode_CheckExact(target_type)) ||
        (level != NULL && !PyLong_CheckExact(level))) {
        return ODD;
    }
    /* severity_number, severity_text */
    if (level != NULL) {
        PyObject *level_name = PyDict_GetItemWithError(wire, k_levelName);
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
        PyObject **key;
        int attr;
    } site[] = {
        {&k_thread, ATTR_THREAD},
        {&k_codeFile, ATTR_CODE_FILE},
        {&k_codeFunc, ATTR_CODE_FUNC},
        {&k_codeLine, ATTR_CODE_LINE},
    };
    for (size_t i = 0; i < sizeof site / sizeof site[0]; i++) {
        PyObject *value = get(wire, *site[i].key);
        if (value != NULL && put_attribute(b, g_attr[site[i].attr], value)) {
            return FAILED;
        }
        if (PyErr_Occurred()) {
            return FAILED;
        }
    }
    /* body */
    PyObject *message = get(wire, k_message);
    if (message != NULL) {
        if (!PyUnicode_CheckExact(message)) {
            return ODD;
        }
        Py_ssize_t start = open_field(b, 0x2a);
        if (start < 0 || put_text(b, 0x0a, message) || close_field(b, start)) {
            return FAILED;
        }
    }
    PyObject *event_id = PyDict_GetItemWithError(wire, k_id);
    if (event_id == NULL || !PyUnicode_CheckExact(event_id)) {
        return PyErr_Occurred() ? FAILED : ODD;
    }
    if (put_attribute(b, g_attr[ATTR_UID], event_id)) {
        return FAILED;
    }
    if (!is_log) {
        PyObject *target = get(wire, k_target);
        if (target != NULL && put_attribute(b, g_attr[ATTR_TARGET], target)) {
            return FAILED;
        }
    }
    static const struct {
        PyObject **key;
        int attr;
    } request[] = {{&k_user, ATTR_USER}, {&k_session, ATTR_SESSION}, {&k_reqId, ATTR_REQ_ID}};
    for (size_t i = 0; i < sizeof request / sizeof request[0]; i++) {
        PyObject *value = get(wire, *request[i].key);
        if (value != NULL && put_attribute(b, g_attr[request[i].attr], value)) {
            return FAILED;
        }
    }
    PyObject *fields = get(wire, k_fields), *metrics = get(wire, k_metrics), *tags = get(wire, k_tags);
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
    PyObject *exc_info = get(wire, k_exc_info);
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
    PyObject *trace_id = get(wire, k_traceId);
    if (trace_id != NULL) {
        return put_trace(b, wire, trace_id);
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
    int rc = encode(&b, wire);
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
scope_name(PyObject *wire)
{
    PyObject *action = PyDict_GetItemWithError(wire, k_action);
    PyObject *target_type = action == NULL ? NULL : get(wire, k_tgType);
    if (action == NULL || PyErr_Occurred() || !PyUnicode_CheckExact(action) ||
        (target_type != NULL && !PyUnicode_CheckExact(target_type))) {
        return NULL;
    }
    if (target_type == NULL || PyUnicode_Compare(target_type, s_logger) != 0 ||
        PyUnicode_Tailmatch(action, s_log_prefix, 0, PY_SSIZE_T_MAX, -1) != 1) {
        return g_event_scope;
    }
    PyObject *target = get(wire, k_target);
    if (target == NULL) {
        return PyErr_Occurred() ? NULL : g_root_scope;
    }
    if (!PyUnicode_CheckExact(target)) {
        return NULL;
    }
    return PyUnicode_GET_LENGTH(target) ? target : g_root_scope;
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
    PyObject *name = scope_name(wire);
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
    /* encoding.HEAD: kind (1 = protobuf), len(resource key), len(scope), big-endian u32 */
    Py_ssize_t resource_len = PyBytes_GET_SIZE(resource), scope_len = PyBytes_GET_SIZE(scope);
    unsigned char head[9] = {1,
                             (unsigned char)(resource_len >> 24), (unsigned char)(resource_len >> 16),
                             (unsigned char)(resource_len >> 8), (unsigned char)resource_len,
                             (unsigned char)(scope_len >> 24), (unsigned char)(scope_len >> 16),
                             (unsigned char)(scope_len >> 8), (unsigned char)scope_len};
    int rc = put(&b, head, 9) || put(&b, PyBytes_AS_STRING(resource), resource_len) ||
                     put(&b, PyBytes_AS_STRING(scope), scope_len)
                 ? FAILED
                 : encode(&b, wire);
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
    PyObject *resource_of = args[1];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(records);
    PyObject **payloads = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    uint64_t *times = PyMem_Calloc(n ? n : 1, sizeof(uint64_t));
    int *group_of = PyMem_Calloc(n ? n : 1, sizeof(int));
    piece resources[MAX_GROUPS], scopes[MAX_GROUPS];
    int resource_count = 0, scope_count = 0;
    PyObject *out = NULL, *messages[MAX_GROUPS] = {NULL};
    buffer b;
    buffer_init(&b);
    if (payloads == NULL || times == NULL || group_of == NULL) {
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
        int overflow = 0;
        unsigned long long t = 0;
        if (PyLong_CheckExact(time_ns)) {
            /* encoding._time: 0 .. 2**64-1, else 0 */
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
            Py_DECREF(time_ns);
        } else {
            Py_DECREF(time_ns);
            out = Py_NewRef(Py_None);
            goto done;
        }
        times[i] = t;
        if (!PyBytes_CheckExact(payload) || PyBytes_GET_SIZE(payload) < 9) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(payload);
        uint64_t resource_len = be32(data + 1), scope_len = be32(data + 5);
        if (data[0] != 1 || 9 + resource_len + scope_len > (uint64_t)PyBytes_GET_SIZE(payload)) {
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
                const char *data = PyBytes_AS_STRING(payloads[i]);
                Py_ssize_t start = 9 + be32((const unsigned char *)data + 1) + be32((const unsigned char *)data + 5);
                Py_ssize_t record_len = PyBytes_GET_SIZE(payloads[i]) - start;
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
    if (payloads != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_XDECREF(payloads[i]);
        }
    }
    PyMem_Free(payloads);
    PyMem_Free(times);
    PyMem_Free(group_of);
    buffer_free(&b);
    Py_DECREF(records);
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
        {&k_cluster, "cluster"},
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
