/* The walk over one queued item (a log record tuple or an Event) to its wire fields, shared
 * by the two modules: _wires.c defines it (wire dicts, JSON lines); _otlp.c borrows it
 * through a capsule (OTLP envelopes straight from the items), so there is one record reader.
 *
 * A Wire holds the event's wire fields in wire order: keys (borrowed: interned wire names,
 * or the keys of ``static``) and values (new references; the id's value NULL while it is
 * still to be drawn).  The id is drawn by the caller of the walk, last, when nothing can send
 * the item back.
 */
#ifndef EVENTLOG_SPEEDUPS_WALK_H
#define EVENTLOG_SPEEDUPS_WALK_H

#include <Python.h>

#define MAX_PAIRS 40

typedef struct {
    Py_ssize_t n;
    PyObject *keys[MAX_PAIRS];
    PyObject *values[MAX_PAIRS];
    long long millis;    /* the tstamp */
    long long time_ns;   /* the Record's time_ns */
    PyObject *action;    /* borrowed */
    PyObject *event;     /* the Event whose id is drawn (borrowed), or NULL */
    int share;           /* 1: an Event's own tags, fields and metrics are written as they are
                          * (lines(), OTLP); 0: copied, the wire dict must not share them (wires()) */
} Wire;

/* What _wires.c lends: the capsule WALK_CAPSULE holds a WalkApi. */
typedef struct {
    /* The wire fields of one item into wire.  1: done, 0: not plain (the Python path takes
     * it; wire cleared), -1: error (wire cleared). */
    int (*item_fields)(Wire *wire, PyObject *item, PyObject *stat, int with_context);
    /* Releases the values. */
    void (*wire_clear)(Wire *wire);
    /* The id of an item whose walk is done: its 32 chars into out (and onto the Event). */
    int (*draw_id)(Wire *wire, char *out, const char *node, PyObject *next_seq);
    /* (items, static, with_context, node, ...): with_context and node read and checked; -1
     * with an error set (also when _wires.setup() was not called). */
    int (*batch_args)(PyObject *const *args, int *with_context, const char **node);
    /* The wire dict of a walked item (its id drawn now if still to be), as wires() makes it:
     * a new reference, or NULL with an error set. */
    PyObject *(*wire_dict)(Wire *wire, const char *node, PyObject *next_seq);
} WalkApi;

#define WALK_CAPSULE "eventlog_speedups._wires.walk"

#endif
