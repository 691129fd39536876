/* The caller's size estimate of an Event for the queue's byte bound, in one C call:
 * eventlog._records.caps.event_bytes (without count), the same number, which a property
 * test holds.  The Python function costs ~1.5k instructions an Event with fields (a frame,
 * five attribute reads, two text_bytes calls); this a few hundred, reading Event's slots
 * directly. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

/* eventlog._records.caps.ITEM_BYTES and VALUE_BYTES, passed by setup() (not spelt twice). */
static Py_ssize_t item_bytes = -1, value_bytes = -1;
static PyObject *s_message, *s_exc_info, *s_tags, *s_fields, *s_metrics;
/* Event's own type and where its five slots are in one (message, exc_info, tags, fields,
 * metrics): an Event of exactly that type is read without the attribute machinery (~100
 * instructions a read), anything else through getattr as Python does. */
static PyTypeObject *g_event_type = NULL;
static Py_ssize_t g_offsets[5] = {-1, -1, -1, -1, -1};

/* ``event.<name>``: a new reference, or NULL with an exception set (an unset slot too). */
static PyObject *
slot_read(PyObject *event, int index, PyObject *name)
{
    if (Py_TYPE(event) == g_event_type && g_offsets[index] >= 0) {
        PyObject *value = *(PyObject **)((char *)event + g_offsets[index]);
        if (value == NULL) {
            PyErr_SetObject(PyExc_AttributeError, name);
            return NULL;
        }
        Py_INCREF(value);
        return value;
    }
    return PyObject_GetAttr(event, name);
}

/* caps._size and caps._cost: a str's or bytes' length (plus value_bytes for an item). */
static Py_ssize_t
text_length(PyObject *value)
{
    if (PyUnicode_Check(value)) {
        return PyUnicode_GET_LENGTH(value);
    }
    if (PyBytes_Check(value)) {
        return PyBytes_GET_SIZE(value);
    }
    return -1;
}

/* caps.text_bytes: value_bytes an item (and a dict's key), plus the length of text; -1 on error. */
static int
text_bytes(PyObject *values, Py_ssize_t *total)
{
    Py_ssize_t sum = 0, n;
    if (PyDict_Check(values)) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(values, &pos, &key, &value)) {
            sum += 2 * value_bytes;
            if ((n = text_length(key)) > 0) {
                sum += n;
            }
            if ((n = text_length(value)) > 0) {
                sum += n;
            }
        }
    }
    else {
        PyObject *iterator = PyObject_GetIter(values), *item;
        if (iterator == NULL) {
            return -1;
        }
        while ((item = PyIter_Next(iterator)) != NULL) {
            sum += value_bytes;
            if ((n = text_length(item)) > 0) {
                sum += n;
            }
            Py_DECREF(item);
        }
        Py_DECREF(iterator);
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    *total += sum;
    return 0;
}

static PyObject *
event_bytes(PyObject *module, PyObject *event)
{
    if (item_bytes < 0) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._caps.setup() was not called");
        return NULL;
    }
    Py_ssize_t size = item_bytes, n;
    PyObject *parts[3] = {NULL, NULL, NULL};
    PyObject *text[2] = {s_message, s_exc_info};
    for (int i = 0; i < 2; i++) {
        PyObject *value = slot_read(event, i, text[i]);
        if (value == NULL) {
            goto done;
        }
        if (value != Py_None) {
            size += (n = text_length(value)) >= 0 ? n : value_bytes;
        }
        Py_DECREF(value);
    }
    /* As the Python function: all three read before any is measured. */
    if ((parts[0] = slot_read(event, 2, s_tags)) == NULL ||
        (parts[1] = slot_read(event, 3, s_fields)) == NULL ||
        (parts[2] = slot_read(event, 4, s_metrics)) == NULL) {
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        int truth = PyObject_IsTrue(parts[i]);
        if (truth < 0 || (truth && text_bytes(parts[i], &size) < 0)) {
            goto done;
        }
    }
done:
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(parts[i]);
    }
    if (PyErr_Occurred()) {
        /* `except Exception: pass`, as the Python function: the size so far. */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyErr_Clear();
    }
    return PyLong_FromSsize_t(size);
}

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *event_type = NULL;
    if (!PyArg_ParseTuple(args, "nn|O!", &item_bytes, &value_bytes, &PyType_Type, &event_type)) {
        return NULL;
    }
    PyObject *names[5] = {s_message, s_exc_info, s_tags, s_fields, s_metrics};
    for (int i = 0; i < 5; i++) {
        g_offsets[i] = -1;
        if (event_type == NULL) {
            continue;
        }
        /* A slot is a member descriptor of the type: its offset is where the value is. */
        PyObject *descr = PyObject_GetAttr(event_type, names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            continue;
        }
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == Py_T_OBJECT_EX) {
                g_offsets[i] = member->offset;
            }
        }
        Py_DECREF(descr);
    }
    Py_XINCREF(event_type);
    Py_XSETREF(g_event_type, (PyTypeObject *)event_type);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------
 * EventHandler.handle, compiled: the caller's side of every logging call.
 *
 * The same decisions as the Python handle() (eventlog._api.handler.python_handle, the
 * reference), made in C for the common case: no filters, a LogRecord of exactly that type
 * whose attributes are of the types logging gives them and whose extra= values are plain,
 * immutable arguments, no caller enrichers, a small message, room in the queue.  Anything
 * else, and any error before something is queued, calls the Python handle(), from the start:
 * nothing read here has an effect, so it decides again as if this had not run.  Once the item
 * is queued an error goes to handleError(), as in Python.  The Python function costs ~12k
 * instructions a call in bytecode dispatch (callgrind, 3.11); this ~2k.
 * ------------------------------------------------------------------------------------------ */

/* What setup_handle() was given; see eventlog._api.handler._load_compiled_handle. */
static struct {
    PyObject *python_handle;   /* the reference, called as python_handle(self, record) */
    PyTypeObject *record_type; /* logging.LogRecord: a subclass may define descriptors */
    PyObject *deque_append;    /* collections.deque.append, a method descriptor */
    PyTypeObject *deque_type;
    PyObject *own_loggers, *worker_threads, *standard, *last_init_key;
    PyObject *api_namespace;   /* eventlog._api.api's globals: its _default, read per call */
    PyObject *context_var;     /* eventlog's ContextVar, or NULL: call current() */
    PyObject *trace_var;       /* OpenTelemetry's ContextVar, or NULL */
    PyObject *current;         /* eventlog._records.context.current */
    Py_ssize_t init_len, item_bytes, arg_bytes, small_bytes;
    double time_min, time_max;
    /* The types of _IMMUTABLE and of KEPT, compared by identity: a type not among them
     * sends the record to Python, which asks the frozenset itself. */
    PyTypeObject *immutable[8], *kept[8];
    int n_immutable, n_kept;
} H;

static PyObject *s_filters, *s_pipeline, *s_name, *s_thread, *s_msg, *s_args, *s_created,
    *s_exc_text, *s_caller_enrichers, *s_worker, *s_queued_bytes, *s_wake_needed, *s_wake,
    *s_handleError, *s_default, *s_gate;

static int set_deque(PyObject *deque_type);

static int
type_in(PyTypeObject *type, PyTypeObject **types, int n)
{
    for (int i = 0; i < n; i++) {
        if (types[i] == type) {
            return 1;
        }
    }
    return 0;
}

/* The request context as eventlog._records.context.current() gives it: eventlog's ContextVar
 * read here, unless OpenTelemetry's context holds something (a span): then current() itself.
 * The compiled handle passes H's variables, the compiled Event E's. */
static PyObject *
context_of(PyObject *current, PyObject *context_var, PyObject *trace_var)
{
    PyObject *ctx = NULL, *otel = NULL;
    if (context_var == NULL) {
        return PyObject_CallNoArgs(current);
    }
    if (PyContextVar_Get(context_var, NULL, &ctx) < 0) {
        return NULL;
    }
    if (ctx == NULL) { /* no default: current() raises LookupError, as it would */
        return PyObject_CallNoArgs(current);
    }
    if (trace_var == NULL) {
        return ctx;
    }
    if (PyContextVar_Get(trace_var, NULL, &otel) < 0) {
        Py_DECREF(ctx);
        return NULL;
    }
    /* current_with_trace: ``if not otel_ctx: return ctx``. */
    int truth = otel == NULL ? 1 : PyObject_IsTrue(otel);
    Py_XDECREF(otel);
    if (truth == 0) {
        return ctx;
    }
    Py_DECREF(ctx);
    if (truth < 0) {
        return NULL;
    }
    return PyObject_CallNoArgs(current);
}

/* An exact int attribute as a Py_ssize_t; -1 with no error set for anything else. */
static Py_ssize_t
size_attr(PyObject *owner, PyObject *name, int *ok)
{
    PyObject *value = PyObject_GetAttr(owner, name);
    Py_ssize_t n = -1;
    *ok = 0;
    if (value == NULL) {
        return -1;
    }
    if (PyLong_CheckExact(value)) {
        n = PyLong_AsSsize_t(value);
        *ok = !(n == -1 && PyErr_Occurred());
    }
    Py_DECREF(value);
    return n;
}

/* ``except Exception:`` then ``obj.name(arg)`` (``name`` NULL: ``obj()``), with the exception
 * being handled, as logging's handleError and log.exception read it from sys.exc_info().
 * NULL when the exception is not an Exception (KeyboardInterrupt, SystemExit: raised on, as
 * from the Python code) or the call raised. */
static PyObject *
call_while_handling(PyObject *obj, PyObject *name, PyObject *arg)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL && exc != NULL) {
        PyException_SetTraceback(exc, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    PyObject *before = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    PyObject *done = name != NULL ? PyObject_CallMethodOneArg(obj, name, arg) : PyObject_CallNoArgs(obj);
    PyErr_SetHandledException(before);
    Py_XDECREF(before);
    Py_XDECREF(exc);
    return done;
}

/* ``except Exception: self.handleError(record)``: 0, or -1 with an error set. */
static int
handle_error(PyObject *self, PyObject *record)
{
    PyObject *done = call_while_handling(self, s_handleError, record);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    return 0;
}

/* Worker.put inlined (the Intake contract) for an item made already: 1 queued; 0 not queued
 * (full, or an attribute of an odd type: the Python code decides); -1 not queued, an error
 * set; -2 queued, then an error set.  From the reads of the bounds to the update of
 * queued_bytes no Python code runs (nothing the garbage collector tracks is made), so no
 * other thread changes the count in between. */
static int
enqueue(PyObject *worker, PyObject *item, Py_ssize_t size)
{
    PyObject *gate = NULL, *queue, *accounts, *value = NULL;
    Py_ssize_t limit, max_bytes, queued;
    int ok, truth, status = -1;
    /* worker.gate: (queue, accounts, limit, max_bytes) in one attribute read, not four
     * (~200 instructions each on 3.13); the Worker keeps it in step with those. */
    if ((gate = PyObject_GetAttr(worker, s_gate)) == NULL) {
        goto done;
    }
    status = 0;
    if (!PyTuple_CheckExact(gate) || PyTuple_GET_SIZE(gate) != 4) {
        goto done;
    }
    queue = PyTuple_GET_ITEM(gate, 0);
    accounts = PyTuple_GET_ITEM(gate, 1);
    if (Py_TYPE(queue) != H.deque_type || !PyLong_CheckExact(PyTuple_GET_ITEM(gate, 2)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(gate, 3))) {
        goto done;
    }
    limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(gate, 2));
    max_bytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(gate, 3));
    if ((limit == -1 || max_bytes == -1) && PyErr_Occurred()) {
        status = -1;
        goto done;
    }
    queued = size_attr(accounts, s_queued_bytes, &ok);
    if (!ok) {
        status = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    if (PyObject_Length(queue) >= limit || queued > max_bytes - size) {
        goto done; /* full: worker.overflowed, overload control's */
    }
    status = -2;
    PyObject *call[2] = {queue, item};
    if ((value = PyObject_Vectorcall(H.deque_append, call, 2, NULL)) == NULL) {
        status = -1; /* nothing was appended */
        goto done;
    }
    Py_CLEAR(value);
    if ((value = PyLong_FromSsize_t(queued + size)) == NULL ||
        PyObject_SetAttr(accounts, s_queued_bytes, value) < 0) {
        goto done;
    }
    Py_CLEAR(value);
    if ((value = PyObject_GetAttr(worker, s_wake_needed)) == NULL || (truth = PyObject_IsTrue(value)) < 0) {
        goto done;
    }
    Py_CLEAR(value);
    if (truth && (value = PyObject_CallMethodNoArgs(worker, s_wake)) == NULL) {
        goto done;
    }
    status = 1;
done:
    Py_XDECREF(value);
    Py_XDECREF(gate);
    return status;
}

/* A plain record handle() queued, and what it made for it, hidden from the garbage
 * collector while they wait in the queue.  In a flood the queue holds hundreds of records,
 * each with a __dict__ of ~22 entries: every young-generation pass walked them all, which
 * cost the caller ~4k instructions an event (callgrind, 3.11), as much as the rest of
 * handle().  Nothing in them can be part of a reference cycle when they are queued (the
 * record passed the plain test: text, numbers, a tuple of those as its args; the item and
 * the (msg, args) pair are referred to by the queue alone).  Whatever another handler or
 * the application adds to the record later is seen again: the worker hands every item it
 * takes (or drops) to retrack() first, so a cycle made meanwhile is collected as ever. */
static void
untrack_queued(PyObject *record, PyObject *attributes, PyObject *item, PyObject *message)
{
    PyObject *objects[4] = {item, message, attributes, record};
    for (int i = 0; i < 4; i++) {
        if (PyObject_IS_GC(objects[i]) && PyObject_GC_IsTracked(objects[i])) {
            PyObject_GC_UnTrack(objects[i]);
        }
    }
}

/* retrack(items): the garbage collector sees again the records (and their __dict__) and
 * Events that the caller's side untracked while they were queued (untrack_queued,
 * untrack_fresh), before the worker (or a drop) lets go of them.  The item tuples and
 * (msg, args) pairs stay untracked: only the worker refers to them. */
static PyObject *
retrack(PyObject *Py_UNUSED(module), PyObject *items)
{
    if (!PyList_CheckExact(items)) {
        PyErr_Format(PyExc_TypeError, "retrack() takes a list of queued items, not %.100s",
                     Py_TYPE(items)->tp_name);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 3) {
            PyObject *record = PyTuple_GET_ITEM(item, 0);
            if (H.record_type == NULL || Py_TYPE(record) != H.record_type || PyObject_GC_IsTracked(record)) {
                continue;
            }
            PyObject *attributes = PyObject_GenericGetDict(record, NULL);
            if (attributes == NULL) {
                PyErr_Clear(); /* a record without a __dict__ has none to hide */
            }
            else {
                if (PyObject_IS_GC(attributes) && !PyObject_GC_IsTracked(attributes)) {
                    PyObject_GC_Track(attributes);
                }
                Py_DECREF(attributes);
            }
            PyObject_GC_Track(record);
        }
        else if (g_event_type != NULL && Py_TYPE(item) == g_event_type && !PyObject_GC_IsTracked(item)) {
            PyObject_GC_Track(item);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
handle(PyObject *self, PyObject *record)
{
    PyObject *attributes = NULL, *value = NULL, *pipeline = NULL, *worker = NULL,
             *message = NULL, *ctx = NULL, *item = NULL, *result = NULL;
    Py_ssize_t size;
    int truth, python = 0;

    if (H.python_handle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._caps.setup_handle() was not called");
        return NULL;
    }
    if (Py_TYPE(record) != H.record_type) {
        goto python;
    }
    /* if self.filters: ... (a filter runs application code, and may replace the record) */
    if ((value = PyObject_GetAttr(self, s_filters)) == NULL) {
        goto python;
    }
    truth = !PyList_CheckExact(value) || PyList_GET_SIZE(value) != 0;
    Py_CLEAR(value);
    if (truth) {
        goto python;
    }
    /* The record's attributes, read from its __dict__ (a LogRecord defines no descriptors). */
    if ((attributes = PyObject_GenericGetDict(record, NULL)) == NULL || !PyDict_CheckExact(attributes)) {
        goto python;
    }
    PyObject *name = PyDict_GetItemWithError(attributes, s_name);
    PyObject *thread = PyDict_GetItemWithError(attributes, s_thread);
    if (name == NULL || thread == NULL || !PyUnicode_CheckExact(name) ||
        !(thread == Py_None || PyLong_CheckExact(thread))) {
        goto python; /* missing (the Python handle goes on) or of a type whose hash may run code */
    }
    if ((truth = PySet_Contains(H.own_loggers, name)) == 0) {
        truth = PySet_Contains(H.worker_threads, thread);
    }
    if (truth < 0) {
        goto python;
    }
    if (truth) { /* our own diagnostics, or a library logging from a worker: no loops */
        Py_DECREF(attributes);
        Py_RETURN_FALSE;
    }
    /* The message: msg itself, or (msg, args) of immutable arguments the worker renders. */
    PyObject *msg = PyDict_GetItemWithError(attributes, s_msg);
    PyObject *args = PyDict_GetItemWithError(attributes, s_args);
    if (msg == NULL || args == NULL || !PyUnicode_CheckExact(msg)) {
        goto python; /* getMessage() now, or unrenderable: Python's */
    }
    if (args == Py_None || (PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 0)) {
        message = Py_NewRef(msg);
        size = H.item_bytes + PyUnicode_GET_LENGTH(msg);
    }
    else if (PyTuple_CheckExact(args)) {
        Py_ssize_t n = PyTuple_GET_SIZE(args);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!type_in(Py_TYPE(PyTuple_GET_ITEM(args, i)), H.immutable, H.n_immutable)) {
                goto python;
            }
        }
        if ((message = PyTuple_Pack(2, msg, args)) == NULL) {
            goto python;
        }
        size = H.item_bytes + PyUnicode_GET_LENGTH(msg) + H.arg_bytes * n;
    }
    else {
        goto python; /* a mapping, or arguments of another kind */
    }
    if (size > H.small_bytes) {
        goto python; /* an Event now, cut to the caps */
    }
    /* Plain: a time in range, no exception, and nothing deleted or added but plain extras. */
    PyObject *created = PyDict_GetItemWithError(attributes, s_created);
    PyObject *exc_info = PyDict_GetItemWithError(attributes, s_exc_info);
    PyObject *exc_text = PyDict_GetItemWithError(attributes, s_exc_text);
    if (created == NULL || !PyFloat_CheckExact(created) || exc_info != Py_None || exc_text != Py_None) {
        goto python;
    }
    double created_s = PyFloat_AS_DOUBLE(created);
    if (!(H.time_min < created_s && created_s < H.time_max)) { /* NaN fails it too */
        goto python;
    }
    if (PyDict_GET_SIZE(attributes) < H.init_len) {
        goto python;
    }
    {
        /* logrecords.plain_record, forwards: the key at index init_len - 1 is the last one
         * LogRecord.__init__ sets, and each extra after it is plain (or its key logging's).
         * The walk starts at that entry, not at 0 (the first 20 keys cost ~900 instructions
         * to step over): CPython's PyDict_Next takes any entry index and goes on from there,
         * skipping deleted entries.  Whatever it yields, counting what it yields makes the
         * test exact: the entries from there to the end must be all but init_len - 1 of them,
         * so the first of them is the one at index init_len - 1; else Python decides. */
        PyObject *key, *extra;
        Py_ssize_t pos = H.init_len - 1, seen = 0;
        while (PyDict_Next(attributes, &pos, &key, &extra)) {
            if (seen++ == 0) {
                if (key != H.last_init_key) {
                    goto python;
                }
            }
            else if (!type_in(Py_TYPE(extra), H.kept, H.n_kept)) {
                if (!PyUnicode_CheckExact(key) || PySet_Contains(H.standard, key) != 1) {
                    goto python;
                }
            }
        }
        if (PyDict_GET_SIZE(attributes) - seen != H.init_len - 1) {
            goto python;
        }
    }
    /* pipeline = self.pipeline or api._default (or api.get_pipeline(): Python's) */
    if ((pipeline = PyObject_GetAttr(self, s_pipeline)) == NULL) {
        goto python;
    }
    if (pipeline == Py_None) {
        Py_SETREF(pipeline, Py_XNewRef(PyDict_GetItemWithError(H.api_namespace, s_default)));
        if (pipeline == NULL || pipeline == Py_None) {
            goto python;
        }
    }
    if (PyObject_IsTrue(pipeline) != 1) {
        goto python;
    }
    if ((value = PyObject_GetAttr(pipeline, s_caller_enrichers)) == NULL) {
        goto python;
    }
    truth = !(PyList_CheckExact(value) || PyTuple_CheckExact(value)) || Py_SIZE(value) != 0;
    Py_CLEAR(value);
    if (truth) {
        goto python;
    }
    if ((worker = PyObject_GetAttr(pipeline, s_worker)) == NULL) {
        goto python;
    }
    if ((ctx = context_of(H.current, H.context_var, H.trace_var)) == NULL
        || (item = PyTuple_Pack(3, record, message, ctx)) == NULL) {
        goto python;
    }
    switch (enqueue(worker, item, size)) {
    case 1:
        untrack_queued(record, attributes, item, message);
        break;
    case -2:
        goto failed;
    default:
        goto python; /* nothing was queued */
    }
    result = Py_NewRef(Py_True);
    goto done;
failed:
    /* Queued (or half): never the Python handle() again, which would queue it twice. */
    Py_CLEAR(value);
    result = handle_error(self, record) < 0 ? NULL : Py_NewRef(Py_True);
    goto done;
python:
    /* Nothing was queued: the Python handle() decides, from the start. */
    if (PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
            python = 1;
        }
    }
    else {
        python = 1;
    }
done:
    Py_XDECREF(value);
    Py_XDECREF(item);
    Py_XDECREF(ctx);
    Py_XDECREF(message);
    Py_XDECREF(worker);
    Py_XDECREF(pipeline);
    Py_XDECREF(attributes);
    if (python) {
        PyObject *call[2] = {self, record};
        return PyObject_Vectorcall(H.python_handle, call, 2, NULL);
    }
    return result;
}

static PyMethodDef handle_def = {
    "handle", handle, METH_O,
    "handle(record) -> bool: EventHandler.handle, the same decisions (python_handle is the reference)",
};

/* The types of a frozenset of types into types[]; -1 (ValueError) past eight. */
static int
types_of(PyObject *set, PyTypeObject **types, int *n)
{
    PyObject *iterator = PyObject_GetIter(set), *item;
    *n = 0;
    if (iterator == NULL) {
        return -1;
    }
    while ((item = PyIter_Next(iterator)) != NULL) {
        if (!PyType_Check(item) || *n >= 8) {
            Py_DECREF(item);
            Py_DECREF(iterator);
            PyErr_SetString(PyExc_ValueError, "expected at most eight types");
            return -1;
        }
        types[(*n)++] = (PyTypeObject *)item; /* held by the frozenset, which is kept */
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
setup_handle(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"cls", "python_handle", "record_type", "deque_type", "own_loggers",
        "worker_threads", "immutable", "kept", "standard", "init_len", "last_init_key", "item_bytes",
        "arg_bytes", "small_bytes", "time_min", "time_max", "api_namespace", "current",
        "context_var", "trace_var", NULL};
    PyObject *cls, *python_handle, *record_type, *deque_type, *own_loggers, *worker_threads,
        *immutable, *kept, *standard, *last_init_key, *api_namespace, *current, *context_var,
        *trace_var;
    Py_ssize_t init_len, item_bytes_, arg_bytes, small_bytes;
    double time_min, time_max;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO!O!O!O!O!O!O!nOnnnddO!OOO:setup_handle", names,
            &PyType_Type, &cls, &python_handle, &PyType_Type, &record_type, &PyType_Type, &deque_type,
            &PyFrozenSet_Type, &own_loggers, &PySet_Type, &worker_threads, &PyFrozenSet_Type, &immutable,
            &PyFrozenSet_Type, &kept, &PyFrozenSet_Type, &standard, &init_len, &last_init_key,
            &item_bytes_, &arg_bytes, &small_bytes, &time_min, &time_max, &PyDict_Type, &api_namespace,
            &current, &context_var, &trace_var)) {
        return NULL;
    }
    if (context_var != Py_None && !PyContextVar_CheckExact(context_var)) {
        PyErr_SetString(PyExc_TypeError, "context_var: a ContextVar or None");
        return NULL;
    }
    if (trace_var != Py_None && !PyContextVar_CheckExact(trace_var)) {
        PyErr_SetString(PyExc_TypeError, "trace_var: a ContextVar or None");
        return NULL;
    }
    if (types_of(immutable, H.immutable, &H.n_immutable) < 0 || types_of(kept, H.kept, &H.n_kept) < 0) {
        return NULL;
    }
    PyObject *method = PyDescr_NewMethod((PyTypeObject *)cls, &handle_def);
    if (method == NULL || set_deque(deque_type) < 0) {
        Py_XDECREF(method);
        return NULL;
    }
    /* Kept for the life of the process (set up once, at import). */
    Py_XSETREF(H.python_handle, Py_NewRef(python_handle));
    Py_XSETREF(H.record_type, (PyTypeObject *)Py_NewRef(record_type));
    Py_XSETREF(H.own_loggers, Py_NewRef(own_loggers));
    Py_XSETREF(H.worker_threads, Py_NewRef(worker_threads));
    Py_INCREF(immutable); /* holds the types compared by identity */
    Py_INCREF(kept);
    Py_XSETREF(H.standard, Py_NewRef(standard));
    Py_XSETREF(H.last_init_key, Py_NewRef(last_init_key));
    Py_XSETREF(H.api_namespace, Py_NewRef(api_namespace));
    Py_XSETREF(H.current, Py_NewRef(current));
    Py_XSETREF(H.context_var, context_var == Py_None ? NULL : Py_NewRef(context_var));
    Py_XSETREF(H.trace_var, trace_var == Py_None ? NULL : Py_NewRef(trace_var));
    H.init_len = init_len;
    H.item_bytes = item_bytes_;
    H.arg_bytes = arg_bytes;
    H.small_bytes = small_bytes;
    H.time_min = time_min;
    H.time_max = time_max;
    return method;
}


/* ------------------------------------------------------------------------------------------
 * Pipeline.submit_event, compiled: every log_event's path (and a converted record's).
 *
 * The same as the Python method (eventlog._engine.pipeline.python_submit_event, the
 * reference) for an Event of exactly that type whose five text slots are set and None or a
 * str, list or dict, with no caller enrichers, within SMALL_BYTES, and room in the queue;
 * anything else calls the Python method from the start (nothing read here has an effect).
 * An error once the Event is queued is raised, as from the Python method.
 * ------------------------------------------------------------------------------------------ */

static PyObject *g_python_submit_event = NULL;
static Py_ssize_t g_small_bytes = -1;

/* event_bytes's number without its reads and calls, for an Event of exactly that type whose
 * message and exc_info are None or a str, tags None or a list, fields and metrics None or a
 * dict (text_bytes of each, as there); 0 (not measured) for anything else. */
static int
plain_bytes(PyObject *event, Py_ssize_t *total)
{
    PyObject *v[5], *key, *value;
    Py_ssize_t size = item_bytes, n, pos;
    for (int i = 0; i < 5; i++) {
        v[i] = *(PyObject **)((char *)event + g_offsets[i]);
    }
    for (int i = 0; i < 2; i++) {
        if (v[i] != Py_None) {
            if (!PyUnicode_CheckExact(v[i])) {
                return 0;
            }
            size += PyUnicode_GET_LENGTH(v[i]);
        }
    }
    if (!(v[2] == Py_None || PyList_CheckExact(v[2])) || !(v[3] == Py_None || PyDict_CheckExact(v[3])) ||
        !(v[4] == Py_None || PyDict_CheckExact(v[4]))) {
        return 0;
    }
    if (v[2] != Py_None) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v[2]); i++) {
            size += value_bytes;
            if ((n = text_length(PyList_GET_ITEM(v[2], i))) > 0) {
                size += n;
            }
        }
    }
    for (int i = 3; i < 5; i++) {
        if (v[i] == Py_None) {
            continue;
        }
        pos = 0;
        while (PyDict_Next(v[i], &pos, &key, &value)) {
            size += 2 * value_bytes;
            if ((n = text_length(key)) > 0) {
                size += n;
            }
            if ((n = text_length(value)) > 0) {
                size += n;
            }
        }
    }
    *total = size;
    return 1;
}

static Py_ssize_t g_only_this_call = 0; /* set by setup_event: see there */

/* An Event that only the caller's call and now the queue hold (``log_event(Event(...))``, a
 * record made into an Event) cannot become part of a reference cycle: nothing made before it
 * refers to it, its slots hold text, numbers, the request context and containers of those
 * (converted when it was made), no caller enricher ran, and the worker stores only such
 * values.  Untracked, the garbage collector's young-generation passes do not walk the Events
 * waiting in the queue (~1.1k instructions an event, callgrind, 3.11); it is freed by its
 * reference count as before. */
static void
untrack_fresh(PyObject *event)
{
    if (g_only_this_call > 0 && Py_REFCNT(event) <= g_only_this_call + 1 && PyObject_GC_IsTracked(event)) {
        PyObject_GC_UnTrack(event);
    }
}

static PyObject *
submit_event(PyObject *self, PyObject *event)
{
    PyObject *worker = NULL, *value;
    Py_ssize_t size = item_bytes;
    int has_text = 0, truth;
    if (g_python_submit_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._caps.setup_submit_event() was not called");
        return NULL;
    }
    if (Py_TYPE(event) != g_event_type || item_bytes < 0) {
        goto python;
    }
    if ((value = PyObject_GetAttr(self, s_caller_enrichers)) == NULL) {
        goto python;
    }
    truth = !(PyList_CheckExact(value) || PyTuple_CheckExact(value)) || Py_SIZE(value) != 0;
    Py_DECREF(value);
    if (truth) {
        goto python;
    }
    /* has_text = event.message or event.tags or event.fields or event.metrics or event.exc_info */
    for (int i = 0; i < 5; i++) {
        if (g_offsets[i] < 0 || (value = *(PyObject **)((char *)event + g_offsets[i])) == NULL) {
            goto python; /* unset: Python's AttributeError, or its `or` stopping before it */
        }
        if (value == Py_None) {
            continue;
        }
        if (PyUnicode_CheckExact(value)) {
            has_text |= PyUnicode_GET_LENGTH(value) != 0;
        }
        else if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
            has_text |= Py_SIZE(value) != 0;
        }
        else if (PyDict_CheckExact(value)) {
            has_text |= PyDict_GET_SIZE(value) != 0;
        }
        else {
            goto python;
        }
    }
    if (has_text && !plain_bytes(event, &size)) { /* caps.event_size, which is event_bytes here */
        if ((value = event_bytes(NULL, event)) == NULL) {
            goto python;
        }
        size = PyLong_AsSsize_t(value);
        Py_DECREF(value);
        if (size == -1 && PyErr_Occurred()) {
            goto python;
        }
    }
    if (size > g_small_bytes) {
        goto python; /* cut to the caps first (cap_event) */
    }
    if ((worker = PyObject_GetAttr(self, s_worker)) == NULL) {
        goto python;
    }
    switch (enqueue(worker, event, size)) {
    case 1:
        Py_DECREF(worker);
        untrack_fresh(event);
        Py_RETURN_NONE;
    case -2:
        Py_DECREF(worker);
        return NULL;
    default:
        break; /* nothing was queued */
    }
python:
    Py_XDECREF(worker);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyErr_Clear();
    }
    PyObject *call[2] = {self, event};
    return PyObject_Vectorcall(g_python_submit_event, call, 2, NULL);
}

static PyMethodDef submit_event_def = {
    "submit_event", submit_event, METH_O,
    "submit_event(event): Pipeline.submit_event, the same (python_submit_event is the reference)",
};

/* collections.deque and its append, for enqueue(). */
static int
set_deque(PyObject *deque_type)
{
    PyObject *append = PyObject_GetAttrString(deque_type, "append");
    if (append == NULL) {
        return -1;
    }
    Py_XSETREF(H.deque_append, append);
    Py_XSETREF(H.deque_type, (PyTypeObject *)Py_NewRef(deque_type));
    return 0;
}

static PyObject *
setup_submit_event(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"cls", "python_submit_event", "small_bytes", "deque_type", NULL};
    PyObject *cls, *python_submit_event, *deque_type;
    Py_ssize_t small_bytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OnO!:setup_submit_event", names, &PyType_Type, &cls,
            &python_submit_event, &small_bytes, &PyType_Type, &deque_type)) {
        return NULL;
    }
    PyObject *method = PyDescr_NewMethod((PyTypeObject *)cls, &submit_event_def);
    if (method == NULL || set_deque(deque_type) < 0) {
        Py_XDECREF(method);
        return NULL;
    }
    Py_XSETREF(g_python_submit_event, Py_NewRef(python_submit_event));
    g_small_bytes = small_bytes;
    return method;
}

/* ------------------------------------------------------------------------------------------
 * Event(...), compiled: the caller's construction of every log_event's Event.
 *
 * setup_event() makes this the vectorcall of the Python class Event itself (the class, its
 * slots, repr, pickling and subclasses stay Python's).  It stores what Event.__init__
 * (eventlog._records.event.python_init, the reference) stores, for the common case: at most
 * three positional arguments; action a non-empty str; target, tg_type, message, user, session,
 * request_id None or a str; level and time_ns None or an int within 64 bits; tags None or a
 * list of str; fields and metrics None or a dict of str keys and values of KEPT types;
 * log_code/logCode None or False.  Anything else, and any error, goes the Python way from
 * the start (type(Event).__call__: object.__new__ and the Python __init__), so errors,
 * conversions and their counting are Python's by construction: nothing read before the
 * object is made has an effect.  A container the call alone holds (a literal, as in
 * ``fields={...}``) is taken as it is instead of copied: nobody else can change it.
 * The Python __init__ costs ~10k instructions a call in bytecode (callgrind, 3.11).
 * ------------------------------------------------------------------------------------------ */

/* The parameters, in Event.__init__'s order (setup_event checks the names against it). */
enum {
    P_ACTION, P_TARGET, P_TG_TYPE, P_KEYWORDS_FOLLOW, P_MESSAGE, P_LEVEL, P_TAGS, P_FIELDS,
    P_METRICS, P_LOG_CODE, P_LOGCODE, P_USER, P_SESSION, P_REQUEST_ID, P_TIME_NS, N_PARAMS
};
static const char *param_names[N_PARAMS] = {"action", "target", "tg_type", "_keywords_follow",
    "message", "level", "tags", "fields", "metrics", "log_code", "logCode", "user", "session",
    "request_id", "time_ns"};

/* The slots, as Event.__slots__ names them (setup_event checks that these are all of them). */
enum {
    S_ID_MADE, S_ACTION, S_CLUSTER, S_CODE_FILE, S_CODE_FUNC, S_CODE_LINE, S_CONTEXT, S_EXC_INFO,
    S_FIELDS, S_HOST, S_ID, S_LEVEL, S_LEVEL_NAME, S_MESSAGE, S_METRICS, S_PID, S_REQUEST_ID,
    S_SESSION, S_SITE, S_TAGS, S_TARGET, S_TG_TYPE, S_THREAD, S_TIME_NS, S_USER, N_SLOTS
};
static const char *slot_names[N_SLOTS] = {"_id_made", "action", "cluster", "code_file",
    "code_func", "code_line", "context", "exc_info", "fields", "host", "id", "level",
    "level_name", "message", "metrics", "pid", "request_id", "session", "site", "tags", "target",
    "tg_type", "thread", "time_ns", "user"};

static struct {
    PyTypeObject *type;       /* eventlog._records.event.Event */
    /* What the class's call runs: while object.__new__ and python_init, made here; once either
     * is replaced (``Event.__init__ = ...``), the Python way. */
    newfunc tp_new;
    PyObject *python_init;
    Py_ssize_t offsets[N_SLOTS];
    PyObject *params[N_PARAMS]; /* interned */
    PyObject *globals;        /* event.py's namespace: _now_ns is read per call, as Python does */
    PyObject *active;         /* threading._active */
    PyObject *current_thread; /* threading.current_thread */
    PyObject *current, *context_var, *trace_var; /* as H's (see context_of) */
    PyObject *time_ns;        /* time.time_ns: what _now_ns is unless replaced */
    unsigned long ident;      /* the last thread's ident, and it as an int (a key of active) */
    PyObject *ident_key;
    PyTypeObject *kept[8];
    int n_kept;
    Py_ssize_t only_this_call; /* the reference count of an argument only the call holds, or 0 */
    /* log_event */
    PyObject *python_log_event, *api_namespace, *get_pipeline, *failed;
} E;

static PyObject *s_now_ns, *s_thread_name, *s_submit_event, *s_dunder_init;


/* None, a str, or (strict) nothing else. */
static inline int
none_or_str(PyObject *value)
{
    return value == NULL || value == Py_None || PyUnicode_CheckExact(value);
}

/* None, or an int within 64 bits; -1 with an error set if asking failed. */
static int
none_or_int64(PyObject *value)
{
    if (value == NULL || value == Py_None) {
        return 1;
    }
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    return overflow == 0;
}

/* A dict of str keys and values of KEPT types (as plain_copy takes it). */
static int
plain_dict(PyObject *value)
{
    PyObject *key, *item;
    Py_ssize_t pos = 0;
    if (!PyDict_CheckExact(value)) {
        return 0;
    }
    while (PyDict_Next(value, &pos, &key, &item)) {
        if (!PyUnicode_CheckExact(key) || !type_in(Py_TYPE(item), E.kept, E.n_kept)) {
            return 0;
        }
    }
    return 1;
}

static int
str_list(PyObject *value)
{
    if (!PyList_CheckExact(value)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(value, i))) {
            return 0;
        }
    }
    return 1;
}

/* The Event's own container: ``value`` itself if only this call holds it, else a copy. */
static PyObject *
own(PyObject *value)
{
    if (value == NULL || value == Py_None) {
        return Py_NewRef(Py_None);
    }
    if (Py_REFCNT(value) <= E.only_this_call) {
        return Py_NewRef(value);
    }
    return PyList_CheckExact(value) ? PyList_GetSlice(value, 0, PyList_GET_SIZE(value)) : PyDict_Copy(value);
}

/* A slot of an Event just allocated (all NULL): set once each. */
static inline void
slot_set(PyObject *event, int index, PyObject *value)
{
    *(PyObject **)((char *)event + E.offsets[index]) = value;
}

/* The Python way: type.__call__(cls, *args, **kwargs). */
static PyObject *
event_python(PyObject *cls, PyObject *const *args, size_t nargs, PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New((Py_ssize_t)nargs), *kwargs = NULL, *result = NULL;
    if (tuple == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        if ((kwargs = PyDict_New()) == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                goto done;
            }
        }
    }
    result = PyType_Type.tp_call(cls, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* Event's __new__ and __init__ are still the ones set up (a cached type lookup). */
static inline int
unchanged(void)
{
    return E.type->tp_new == E.tp_new && _PyType_Lookup(E.type, s_dunder_init) == E.python_init;
}

static PyObject *
event_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    size_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *p[N_PARAMS] = {NULL};
    PyObject *event = NULL, *value = NULL;
    int ok;
    if ((PyTypeObject *)cls != E.type || !unchanged() || nargs > 3) {
        goto python;
    }
    for (size_t i = 0; i < nargs; i++) {
        p[i] = args[i];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, k);
            int found = -1;
            for (int j = 0; j < N_PARAMS && found < 0; j++) {
                if (name == E.params[j]) {
                    found = j;
                }
            }
            if (found < 0) {
                for (int j = 0; j < N_PARAMS && found < 0; j++) {
                    if (PyUnicode_Check(name) && PyUnicode_Compare(name, E.params[j]) == 0) {
                        found = j;
                    }
                }
                if (PyErr_Occurred()) {
                    goto python;
                }
            }
            if (found < 0 || p[found] != NULL) {
                goto python; /* unknown, or given twice: Python's TypeError */
            }
            p[found] = args[nargs + k];
        }
    }
    if (p[P_ACTION] == NULL || !PyUnicode_CheckExact(p[P_ACTION]) || PyUnicode_GET_LENGTH(p[P_ACTION]) == 0 ||
        p[P_KEYWORDS_FOLLOW] != NULL || !none_or_str(p[P_TARGET]) || !none_or_str(p[P_TG_TYPE]) ||
        !none_or_str(p[P_MESSAGE]) || !none_or_str(p[P_USER]) || !none_or_str(p[P_SESSION]) ||
        !none_or_str(p[P_REQUEST_ID])) {
        goto python;
    }
    if ((ok = none_or_int64(p[P_LEVEL])) != 1 || (ok = none_or_int64(p[P_TIME_NS])) != 1) {
        goto python;
    }
    for (int j = P_LOG_CODE; j <= P_LOGCODE; j++) {
        if (!(p[j] == NULL || p[j] == Py_None || p[j] == Py_False)) {
            goto python; /* caller_location(), Python's */
        }
    }
    if (!(p[P_TAGS] == NULL || p[P_TAGS] == Py_None || str_list(p[P_TAGS])) ||
        !(p[P_FIELDS] == NULL || p[P_FIELDS] == Py_None || plain_dict(p[P_FIELDS])) ||
        !(p[P_METRICS] == NULL || p[P_METRICS] == Py_None || plain_dict(p[P_METRICS]))) {
        goto python;
    }
    /* Decided: made here.  Reads follow (the clock, the context, the thread), no effects. */
    if ((event = E.type->tp_alloc(E.type, 0)) == NULL) {
        goto python;
    }
    slot_set(event, S_ACTION, Py_NewRef(p[P_ACTION]));
    slot_set(event, S_TARGET, Py_NewRef(p[P_TARGET] ? p[P_TARGET] : Py_None));
    slot_set(event, S_TG_TYPE, Py_NewRef(p[P_TG_TYPE] ? p[P_TG_TYPE] : Py_None));
    slot_set(event, S_MESSAGE, Py_NewRef(p[P_MESSAGE] ? p[P_MESSAGE] : Py_None));
    if ((value = own(p[P_TAGS])) == NULL) {
        goto python;
    }
    slot_set(event, S_TAGS, value);
    if ((value = own(p[P_FIELDS])) == NULL) {
        goto python;
    }
    slot_set(event, S_FIELDS, value);
    if ((value = own(p[P_METRICS])) == NULL) {
        goto python;
    }
    slot_set(event, S_METRICS, value);
    if (p[P_TIME_NS] == NULL || p[P_TIME_NS] == Py_None) {
        PyObject *now = PyDict_GetItemWithError(E.globals, s_now_ns);
        struct timespec ts;
        if (now == E.time_ns && clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec >= 0 &&
            ts.tv_sec < 9000000000LL) {
            /* time.time_ns() on POSIX: CLOCK_REALTIME in nanoseconds, without the call */
            value = PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        }
        else if (now == NULL) {
            goto python; /* NameError, or the error, Python's */
        }
        else {
            value = PyObject_CallNoArgs(now);
        }
        if (value == NULL) {
            goto python;
        }
    }
    else {
        value = Py_NewRef(p[P_TIME_NS]);
    }
    slot_set(event, S_TIME_NS, value);
    slot_set(event, S_LEVEL, Py_NewRef(p[P_LEVEL] ? p[P_LEVEL] : Py_None));
    if ((value = context_of(E.current, E.context_var, E.trace_var)) == NULL) {
        goto python;
    }
    slot_set(event, S_CONTEXT, value);
    slot_set(event, S_USER, Py_NewRef(p[P_USER] ? p[P_USER] : Py_None));
    slot_set(event, S_SESSION, Py_NewRef(p[P_SESSION] ? p[P_SESSION] : Py_None));
    slot_set(event, S_REQUEST_ID, Py_NewRef(p[P_REQUEST_ID] ? p[P_REQUEST_ID] : Py_None));
    slot_set(event, S_CODE_FILE, Py_NewRef(Py_None));
    slot_set(event, S_CODE_LINE, Py_NewRef(Py_None));
    slot_set(event, S_CODE_FUNC, Py_NewRef(Py_None));
    {
        /* (_active_get(_get_ident()) or _current_thread())._name */
        unsigned long ident = PyThread_get_thread_ident();
        PyObject *thread;
        if (E.ident_key == NULL || E.ident != ident) { /* the int made once a thread, not per call */
            PyObject *key = PyLong_FromUnsignedLong(ident);
            if (key == NULL) {
                goto python;
            }
            Py_XSETREF(E.ident_key, key);
            E.ident = ident;
        }
        thread = Py_XNewRef(PyDict_GetItemWithError(E.active, E.ident_key));
        if (thread == NULL && PyErr_Occurred()) {
            goto python;
        }
        int truth = thread == NULL ? 0 : PyObject_IsTrue(thread);
        if (truth < 0) {
            Py_DECREF(thread);
            goto python;
        }
        if (!truth) {
            Py_XSETREF(thread, PyObject_CallNoArgs(E.current_thread));
            if (thread == NULL) {
                goto python;
            }
        }
        value = PyObject_GetAttr(thread, s_thread_name);
        Py_DECREF(thread);
        if (value == NULL) {
            goto python;
        }
        slot_set(event, S_THREAD, value);
    }
    int nones[] = {S_EXC_INFO, S_ID, S_ID_MADE, S_SITE, S_CLUSTER, S_HOST, S_PID};
    for (size_t i = 0; i < sizeof(nones) / sizeof(nones[0]); i++) {
        slot_set(event, nones[i], Py_NewRef(Py_None));
    }
    return event;
python:
    Py_XDECREF(event);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyErr_Clear();
    }
    return event_python(cls, args, nargs, kwnames);
}

/* The reference count that an argument only the call holds has inside a C function, as in
 * ``f(object())`` (setup_event compares it with one the caller keeps). */
static PyObject *
refcount(PyObject *module, PyObject *value)
{
    return PyLong_FromSsize_t(Py_REFCNT(value));
}

static PyObject *
setup_event(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"cls", "params", "namespace", "active", "current_thread", "current",
        "context_var", "trace_var", "kept", "only_this_call", "time_ns", "python_init", NULL};
    PyObject *cls, *params, *namespace, *active, *current_thread, *current, *context_var, *trace_var, *kept,
        *time_ns, *python_init;
    Py_ssize_t only_this_call;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OOOOO!nOO:setup_event", names, &PyType_Type, &cls,
            &PyTuple_Type, &params, &PyDict_Type, &namespace, &PyDict_Type, &active, &current_thread,
            &current, &context_var, &trace_var, &PyFrozenSet_Type, &kept, &only_this_call, &time_ns,
            &python_init)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "cls: a class made by a class statement");
        return NULL;
    }
    if (PyTuple_GET_SIZE(params) != N_PARAMS) {
        PyErr_SetString(PyExc_ValueError, "params: Event.__init__'s parameters changed");
        return NULL;
    }
    for (int j = 0; j < N_PARAMS; j++) {
        PyObject *name = PyTuple_GET_ITEM(params, j);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, param_names[j]) != 0) {
            PyErr_Format(PyExc_ValueError, "params: expected %s at %d", param_names[j], j);
            return NULL;
        }
    }
    if ((context_var != Py_None && !PyContextVar_CheckExact(context_var)) ||
        (trace_var != Py_None && !PyContextVar_CheckExact(trace_var))) {
        PyErr_SetString(PyExc_TypeError, "context_var, trace_var: a ContextVar or None");
        return NULL;
    }
    /* Every slot is one this code sets (or leaves unset: level_name), and no more. */
    PyObject *slots = PyObject_GetAttrString(cls, "__slots__");
    if (slots == NULL) {
        return NULL;
    }
    Py_ssize_t n_slots = PyObject_Length(slots);
    Py_DECREF(slots);
    if (n_slots != N_SLOTS) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "cls.__slots__: not the slots this code sets");
        }
        return NULL;
    }
    Py_ssize_t offsets[N_SLOTS];
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *descr = PyObject_GetAttrString(cls, slot_names[i]);
        if (descr == NULL) {
            return NULL;
        }
        int fine = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
            ((PyMemberDescrObject *)descr)->d_member->type == Py_T_OBJECT_EX;
        if (fine) {
            offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!fine) {
            PyErr_Format(PyExc_ValueError, "cls.%s: not a slot", slot_names[i]);
            return NULL;
        }
    }
    if (types_of(kept, E.kept, &E.n_kept) < 0) {
        return NULL;
    }
    if (_PyType_Lookup(type, s_dunder_init) != python_init) {
        PyErr_SetString(PyExc_ValueError, "python_init: not cls.__init__");
        return NULL;
    }
    memcpy(E.offsets, offsets, sizeof(offsets));
    Py_INCREF(kept); /* holds the types compared by identity */
    Py_XSETREF(E.type, (PyTypeObject *)Py_NewRef(cls));
    Py_XSETREF(E.globals, Py_NewRef(namespace));
    Py_XSETREF(E.active, Py_NewRef(active));
    Py_XSETREF(E.current_thread, Py_NewRef(current_thread));
    Py_XSETREF(E.current, Py_NewRef(current));
    Py_XSETREF(E.time_ns, Py_NewRef(time_ns));
    Py_XSETREF(E.context_var, context_var == Py_None ? NULL : Py_NewRef(context_var));
    Py_XSETREF(E.trace_var, trace_var == Py_None ? NULL : Py_NewRef(trace_var));
    E.only_this_call = g_only_this_call = only_this_call;
    E.tp_new = type->tp_new;
    Py_XSETREF(E.python_init, Py_NewRef(python_init));
    type->tp_vectorcall = event_vectorcall;
    Py_RETURN_NONE;
}

/* Whether Event(...) is made by event_vectorcall (the class is unchanged since set-up). */
static PyObject *
event_compiled(PyObject *module, PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    return PyBool_FromLong(PyType_Check(cls) && type == E.type && type->tp_vectorcall == event_vectorcall &&
        unchanged());
}

/* ------------------------------------------------------------------------------------------
 * log_event, compiled: eventlog._api.api.python_log_event (the reference) for an Event of
 * exactly that type that only the call holds (``log_event(Event(...))``); anything else is
 * the Python function's, which snapshots it.  Never raises an Exception: it goes to the
 * reference's log (``failed``), as there.
 * ------------------------------------------------------------------------------------------ */

static PyObject *
log_event(PyObject *module, PyObject *event)
{
    PyObject *pipeline, *done;
    if (E.python_log_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._caps.setup_log_event() was not called");
        return NULL;
    }
    if (Py_TYPE(event) != E.type || E.only_this_call <= 0 || Py_REFCNT(event) > E.only_this_call) {
        return PyObject_CallOneArg(E.python_log_event, event);
    }
    /* (_default or get_pipeline()).submit_event(event) */
    pipeline = Py_XNewRef(PyDict_GetItemWithError(E.api_namespace, s_default));
    if (pipeline != NULL) {
        int truth = PyObject_IsTrue(pipeline);
        if (truth < 0) {
            Py_CLEAR(pipeline);
            goto failed;
        }
        if (!truth) {
            Py_CLEAR(pipeline);
        }
    }
    else if (PyErr_Occurred()) {
        goto failed;
    }
    if (pipeline == NULL && (pipeline = PyObject_CallNoArgs(E.get_pipeline)) == NULL) {
        goto failed;
    }
    PyObject *call[2] = {pipeline, event};
    done = PyObject_VectorcallMethod(s_submit_event, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(pipeline);
    if (done != NULL) {
        Py_DECREF(done);
        Py_RETURN_NONE;
    }
failed:
    /* ``except Exception: log.exception(...)``, with the exception being handled */
    done = call_while_handling(E.failed, NULL, NULL);
    if (done == NULL) {
        return NULL;
    }
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyMethodDef log_event_def = {
    "log_event", log_event, METH_O,
    "log_event(event)\n--\n\n"
    "Queue an event for sending and return at once.  Never raises.\n\n"
    "What arrives is the event as it was at this call: changing it afterwards,\n"
    "or logging it again, does not change what was queued.\n\n"
    ">>> log_event(Event(\"click\", \"my-button\", \"ui\"))  # doctest: +SKIP\n",
};

static PyObject *
setup_log_event(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"python_log_event", "api_namespace", "get_pipeline", "failed", "module", NULL};
    PyObject *python_log_event, *api_namespace, *get_pipeline, *failed, *module_name;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!OOU:setup_log_event", names, &python_log_event,
            &PyDict_Type, &api_namespace, &get_pipeline, &failed, &module_name)) {
        return NULL;
    }
    if (E.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "eventlog_speedups._caps.setup_event() was not called");
        return NULL;
    }
    PyObject *function = PyCFunction_NewEx(&log_event_def, NULL, module_name);
    if (function == NULL) {
        return NULL;
    }
    Py_XSETREF(E.python_log_event, Py_NewRef(python_log_event));
    Py_XSETREF(E.api_namespace, Py_NewRef(api_namespace));
    Py_XSETREF(E.get_pipeline, Py_NewRef(get_pipeline));
    Py_XSETREF(E.failed, Py_NewRef(failed));
    return function;
}

static PyMethodDef methods[] = {
    {"event_bytes", event_bytes, METH_O,
     "event_bytes(event) -> eventlog._records.caps.event_bytes(event), the same number"},
    {"setup", setup, METH_VARARGS, "setup(item_bytes, value_bytes, event_type=None)"},
    {"setup_handle", (PyCFunction)(void (*)(void))setup_handle, METH_VARARGS | METH_KEYWORDS,
     "setup_handle(cls, python_handle, ...) -> cls's compiled handle method (see handler.py)"},
    {"setup_submit_event", (PyCFunction)(void (*)(void))setup_submit_event, METH_VARARGS | METH_KEYWORDS,
     "setup_submit_event(cls, python_submit_event, small_bytes, deque_type) -> the compiled method"},
    {"setup_event", (PyCFunction)(void (*)(void))setup_event, METH_VARARGS | METH_KEYWORDS,
     "setup_event(cls, params, namespace, ...): Event(...) made in C from now on (see event.py)"},
    {"event_compiled", event_compiled, METH_O, "event_compiled(cls) -> whether cls(...) is made in C"},
    {"retrack", retrack, METH_O,
     "retrack(items): the queued records and Events in items seen by the garbage collector again"},
    {"refcount", refcount, METH_O, "refcount(value) -> its reference count inside a C function"},
    {"setup_log_event", (PyCFunction)(void (*)(void))setup_log_event, METH_VARARGS | METH_KEYWORDS,
     "setup_log_event(python_log_event, api_namespace, get_pipeline, failed, module) -> log_event"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eventlog_speedups._caps",
    "The caller's side: an Event's size for the queue's byte bound, and EventHandler.handle.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__caps(void)
{
    if ((s_message = PyUnicode_InternFromString("message")) == NULL ||
        (s_exc_info = PyUnicode_InternFromString("exc_info")) == NULL ||
        (s_tags = PyUnicode_InternFromString("tags")) == NULL ||
        (s_fields = PyUnicode_InternFromString("fields")) == NULL ||
        (s_metrics = PyUnicode_InternFromString("metrics")) == NULL) {
        return NULL;
    }
    PyObject **interned[] = {&s_filters, &s_pipeline, &s_name, &s_thread, &s_msg, &s_args,
        &s_created, &s_exc_text, &s_caller_enrichers, &s_worker, &s_queued_bytes, &s_wake_needed, &s_wake, &s_handleError, &s_default, &s_now_ns, &s_thread_name,
        &s_submit_event, &s_dunder_init, &s_gate};
    const char *texts[] = {"filters", "pipeline", "name", "thread", "msg", "args", "created",
        "exc_text", "caller_enrichers", "worker", "queued_bytes", "wake_needed", "wake", "handleError", "_default", "_now_ns", "_name",
        "submit_event", "__init__", "gate"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if ((*interned[i] = PyUnicode_InternFromString(texts[i])) == NULL) {
            return NULL;
        }
    }
    for (int j = 0; j < N_PARAMS; j++) {
        if ((E.params[j] = PyUnicode_InternFromString(param_names[j])) == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&module_def);
}
