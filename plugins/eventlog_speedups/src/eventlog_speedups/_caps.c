/* The caller's size estimate of an Event for the queue's byte bound, in one C call:
 * eventlog._records.caps.event_bytes (without count), the same number, which a property
 * test holds.  The Python function costs ~1.5k instructions an Event with fields (a frame,
 * five attribute reads, two text_bytes calls); this a few hundred, reading Event's slots
 * directly. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

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

static PyMethodDef methods[] = {
    {"event_bytes", event_bytes, METH_O,
     "event_bytes(event) -> eventlog._records.caps.event_bytes(event), the same number"},
    {"setup", setup, METH_VARARGS, "setup(item_bytes, value_bytes, event_type=None)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eventlog_speedups._caps", "An Event's size for the queue's byte bound.", -1,
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
    return PyModule_Create(&module_def);
}
