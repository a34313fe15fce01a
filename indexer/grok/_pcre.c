/* logpipe.indexer.grok._pcre: grok searches run by PCRE2's JIT, answering with the match's groups.
 *
 * A grok pattern is a backtracking regex; Python's re and PCRE2 are both Perl-style backtracking
 * engines, so for the syntax both read the same way (indexer/grok/native.py translates and
 * refuses what they do not) they find the same match with the same groups. PCRE2's JIT finds it
 * several times faster, and this module hands back the groups as one tuple in one C call
 * (Python's ``m.groups()``), which is what the grok extractors read.
 *
 * Only where the two engines agree by construction does PCRE2 run: on lines that are pure ASCII
 * (no Unicode class of \w, \d, \s, \b nor case folding is then in play; the pattern is compiled
 * without PCRE2_UCP, and \s is widened to Python's ASCII whitespace by the translator) and hold
 * no newline (Python's ``$``, ``^`` and ``\Z`` treat a final newline differently). Every other
 * line, and a search PCRE2 gives up on (its match limit, a JIT stack too small), is answered by
 * the pattern's Python fallback, a callable with re's exact semantics and the grok watchdog's
 * time budget. So the groups of a line never depend on whether this module is installed.
 */
#define _GNU_SOURCE   /* memmem */
#define PY_SSIZE_T_CLEAN
#define PCRE2_CODE_UNIT_WIDTH 8
#include <Python.h>
#include <string.h>
#include <pcre2.h>

/* PCRE2 gives up on a line after this many backtracking steps and the Python fallback (with the
 * watchdog's time budget) answers instead: a hostile line never runs unbounded in C, where no
 * signal can stop it. Grok's real lines need a few thousand. */
#define MATCH_LIMIT 2000000
#define JIT_STACK_MAX (1024 * 1024)

enum { F_MULTILINE = 1, F_IGNORECASE = 2, F_DOTALL = 4, F_VERBOSE = 8 };

static pcre2_match_context *match_context;
static pcre2_compile_context *compile_context;
static pcre2_jit_stack *jit_stack;

typedef struct {
    PyObject_HEAD
    pcre2_code *code;
    pcre2_match_data *data;
    PyObject *fallback;
    uint32_t groups;
    int jit;
    int busy;
    /* captures(): per field (in the order of the dict it builds), its groups and their
     * conversions (0: none, else an index into converters + 1) */
    PyObject *field_names;      /* tuple of str */
    PyObject *converters;       /* tuple of callables */
    Py_ssize_t *field_start;    /* into field_groups: n_fields + 1 entries */
    int *field_groups;
    int *field_convs;
} PatternObject;

static void pattern_dealloc(PatternObject *self)
{
    if (self->data)
        pcre2_match_data_free(self->data);
    if (self->code)
        pcre2_code_free(self->code);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->field_names);
    Py_XDECREF(self->converters);
    PyMem_Free(self->field_start);
    PyMem_Free(self->field_groups);
    PyMem_Free(self->field_convs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int pattern_init(PatternObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pattern", "flags", "fallback", NULL};
    const char *text;
    Py_ssize_t length;
    int flags;
    PyObject *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#iO", kwlist, &text, &length, &flags,
                                     &fallback))
        return -1;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return -1;
    }
    if (self->code) {
        PyErr_SetString(PyExc_RuntimeError, "Pattern is already compiled");
        return -1;
    }
    uint32_t options = PCRE2_UTF;
    if (flags & F_MULTILINE) options |= PCRE2_MULTILINE;
    if (flags & F_IGNORECASE) options |= PCRE2_CASELESS;
    if (flags & F_DOTALL) options |= PCRE2_DOTALL;
    if (flags & F_VERBOSE) options |= PCRE2_EXTENDED;
    int error;
    PCRE2_SIZE offset;
    self->code = pcre2_compile((PCRE2_SPTR)text, (PCRE2_SIZE)length, options, &error, &offset,
                               compile_context);
    if (self->code == NULL) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        PyErr_Format(PyExc_ValueError, "PCRE2 refuses the pattern at offset %zu: %s",
                     (size_t)offset, (const char *)message);
        return -1;
    }
    pcre2_pattern_info(self->code, PCRE2_INFO_CAPTURECOUNT, &self->groups);
    self->jit = pcre2_jit_compile(self->code, PCRE2_JIT_COMPLETE) == 0;
    self->data = pcre2_match_data_create_from_pattern(self->code, NULL);
    if (self->data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(fallback);
    self->fallback = fallback;
    return 0;
}

/* One group's value as a new reference, NULL (no error set) when it took no part: from PCRE2's
 * ovector, or from the fallback's groups tuple when ovector is NULL. */
static PyObject *group_value(PyObject *line, PCRE2_SIZE *ovector, int rc, PyObject *values,
                             uint32_t i, int *failed)
{
    if (ovector == NULL) {
        PyObject *v = PyTuple_GET_ITEM(values, i - 1);
        return v == Py_None ? NULL : Py_NewRef(v);
    }
    if ((int)i >= rc || ovector[2 * i] == PCRE2_UNSET)
        return NULL;
    PyObject *v = PyUnicode_Substring(line, (Py_ssize_t)ovector[2 * i],
                                      (Py_ssize_t)ovector[2 * i + 1]);
    if (v == NULL)
        *failed = 1;
    return v;
}

/* The captures dict (see captures()) from a match's groups. */
static PyObject *build_captures(PatternObject *self, PyObject *line, PCRE2_SIZE *ovector, int rc,
                                PyObject *values)
{
    if (values != NULL && (!PyTuple_Check(values)
                           || PyTuple_GET_SIZE(values) != (Py_ssize_t)self->groups)) {
        PyErr_SetString(PyExc_TypeError, "the fallback must give a tuple of every group");
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    Py_ssize_t n_fields = PyTuple_GET_SIZE(self->field_names);
    int failed = 0;
    for (Py_ssize_t f = 0; f < n_fields && !failed; f++) {
        PyObject *first = NULL, *list = NULL;
        for (Py_ssize_t k = self->field_start[f]; k < self->field_start[f + 1]; k++) {
            PyObject *v = group_value(line, ovector, rc, values, (uint32_t)self->field_groups[k],
                                      &failed);
            if (v == NULL) {
                if (failed)
                    break;
                continue;
            }
            if (self->field_convs[k]) {
                PyObject *conv = PyTuple_GET_ITEM(self->converters, self->field_convs[k] - 1);
                PyObject *converted = PyObject_CallOneArg(conv, v);
                Py_DECREF(v);
                if (converted == NULL) {
                    failed = 1;
                    break;
                }
                v = converted;
            }
            if (first == NULL) {
                first = v;
            } else {
                if (list == NULL) {
                    list = PyList_New(1);
                    if (list == NULL) {
                        Py_DECREF(v);
                        failed = 1;
                        break;
                    }
                    PyList_SET_ITEM(list, 0, Py_NewRef(first));
                }
                int err = PyList_Append(list, v);
                Py_DECREF(v);
                if (err < 0) {
                    failed = 1;
                    break;
                }
            }
        }
        PyObject *value = list ? list : first;
        if (!failed && value != NULL
            && PyDict_SetItem(out, PyTuple_GET_ITEM(self->field_names, f), value) < 0)
            failed = 1;
        Py_XDECREF(first);
        Py_XDECREF(list);
    }
    if (failed) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* Search one line; calls `answer` with PCRE2's ovector, or with the fallback's groups tuple
 * (ovector NULL) where the fallback answers. None when nothing matched. */
typedef PyObject *(*answer_fn)(PatternObject *, PyObject *, PCRE2_SIZE *, int, PyObject *);

static PyObject *answer_groups(PatternObject *self, PyObject *line, PCRE2_SIZE *ovector, int rc,
                               PyObject *values)
{
    if (values != NULL)
        return Py_NewRef(values);
    PyObject *result = PyTuple_New(self->groups);
    int failed = 0;
    for (uint32_t i = 1; result != NULL && i <= self->groups; i++) {
        PyObject *value = group_value(line, ovector, rc, NULL, i, &failed);
        if (failed) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, i - 1, value ? value : Py_NewRef(Py_None));
    }
    return result;
}

static PyObject *from_fallback(PatternObject *self, PyObject *line, answer_fn answer)
{
    PyObject *values = PyObject_CallOneArg(self->fallback, line);
    if (values == NULL || values == Py_None)
        return values;
    PyObject *result = answer(self, line, NULL, 0, values);
    Py_DECREF(values);
    return result;
}

static PyObject *search(PatternObject *self, PyObject *line, answer_fn answer)
{
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "a grok search takes a str");
        return NULL;
    }
    if (self->code == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Pattern is not compiled");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line))
        return from_fallback(self, line, answer);
    Py_ssize_t length = PyUnicode_GET_LENGTH(line);
    const char *text = (const char *)PyUnicode_DATA(line);
    if (memchr(text, '\n', (size_t)length) != NULL)
        return from_fallback(self, line, answer);

    /* the GIL is held throughout, but building the tuple may run a finaliser that searches
     * with this very pattern: that search gets match data of its own */
    pcre2_match_data *data = self->data;
    int own = 0;
    if (self->busy) {
        data = pcre2_match_data_create_from_pattern(self->code, NULL);
        if (data == NULL)
            return PyErr_NoMemory();
        own = 1;
    }
    self->busy++;
    int rc;
    if (self->jit)
        rc = pcre2_jit_match(self->code, (PCRE2_SPTR)text, (PCRE2_SIZE)length, 0, 0, data,
                             match_context);
    else
        rc = pcre2_match(self->code, (PCRE2_SPTR)text, (PCRE2_SIZE)length, 0,
                         PCRE2_NO_UTF_CHECK, data, match_context);
    PyObject *result;
    if (rc == PCRE2_ERROR_NOMATCH) {
        result = Py_NewRef(Py_None);
    } else if (rc < 0) {
        /* a limit, not an answer: Python decides (under the watchdog) */
        result = from_fallback(self, line, answer);
    } else {
        result = answer(self, line, pcre2_get_ovector_pointer(data), rc, NULL);
    }
    self->busy--;
    if (own)
        pcre2_match_data_free(data);
    return result;
}

/* groups(line) -> tuple of the groups (None for a group that took no part) or None */
static PyObject *pattern_groups(PatternObject *self, PyObject *line)
{
    return search(self, line, answer_groups);
}

/* captures(line) -> {field: value or [values]} of the groups that took part, or None */
static PyObject *pattern_captures(PatternObject *self, PyObject *line)
{
    if (self->field_names == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "captures() before set_fields()");
        return NULL;
    }
    return search(self, line, build_captures);
}

/* set_fields(((field, ((group, conversion), ...)), ...), converters) */
static PyObject *pattern_set_fields(PatternObject *self, PyObject *args)
{
    PyObject *spec, *converters;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &spec, &PyTuple_Type, &converters))
        return NULL;
    Py_ssize_t n_fields = PyTuple_GET_SIZE(spec), total = 0;
    for (Py_ssize_t f = 0; f < n_fields; f++) {
        PyObject *item = PyTuple_GET_ITEM(spec, f);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2
            || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0))
            || !PyTuple_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "a field is (name, ((group, conversion), ...))");
            return NULL;
        }
        total += PyTuple_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    }
    Py_ssize_t *start = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_fields + 1));
    int *groups = PyMem_Malloc(sizeof(int) * (size_t)(total + 1));
    int *convs = PyMem_Malloc(sizeof(int) * (size_t)(total + 1));
    PyObject *names = PyTuple_New(n_fields);
    if (!start || !groups || !convs || !names)
        goto fail;
    Py_ssize_t k = 0;
    for (Py_ssize_t f = 0; f < n_fields; f++) {
        PyObject *item = PyTuple_GET_ITEM(spec, f);
        PyObject *pairs = PyTuple_GET_ITEM(item, 1);
        PyTuple_SET_ITEM(names, f, Py_NewRef(PyTuple_GET_ITEM(item, 0)));
        start[f] = k;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(pairs); j++, k++) {
            int group, conv;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(pairs, j), "ii", &group, &conv))
                goto fail;
            if (group < 1 || (uint32_t)group > self->groups || conv < 0
                || conv > PyTuple_GET_SIZE(converters)) {
                PyErr_SetString(PyExc_ValueError, "no such group or conversion");
                goto fail;
            }
            groups[k] = group;
            convs[k] = conv;
        }
    }
    start[n_fields] = k;
    PyMem_Free(self->field_start);
    PyMem_Free(self->field_groups);
    PyMem_Free(self->field_convs);
    Py_XSETREF(self->field_names, names);
    Py_XSETREF(self->converters, Py_NewRef(converters));
    self->field_start = start;
    self->field_groups = groups;
    self->field_convs = convs;
    Py_RETURN_NONE;
fail:
    PyMem_Free(start);
    PyMem_Free(groups);
    PyMem_Free(convs);
    Py_XDECREF(names);
    return NULL;
}

static PyObject *pattern_get_groups(PatternObject *self, void *closure)
{
    return PyLong_FromUnsignedLong(self->groups);
}

static PyObject *pattern_get_jit(PatternObject *self, void *closure)
{
    return PyBool_FromLong(self->jit);
}

static PyMethodDef pattern_methods[] = {
    {"groups", (PyCFunction)pattern_groups, METH_O,
     "groups(line) -> the match's groups as a tuple (None: no match)"},
    {"captures", (PyCFunction)pattern_captures, METH_O,
     "captures(line) -> {field: value or [values]} of the groups that took part (None: no match)"},
    {"set_fields", (PyCFunction)pattern_set_fields, METH_VARARGS,
     "set_fields(spec, converters): the fields captures() builds, in order"},
    {NULL}
};

static PyGetSetDef pattern_getset[] = {
    {"group_count", (getter)pattern_get_groups, NULL, "capturing groups", NULL},
    {"jit", (getter)pattern_get_jit, NULL, "whether PCRE2's JIT compiled it", NULL},
    {NULL}
};

static PyTypeObject PatternType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logpipe.indexer.grok._pcre.Pattern",
    .tp_doc = "Pattern(pattern, flags, fallback): a grok regex compiled by PCRE2",
    .tp_basicsize = sizeof(PatternObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pattern_init,
    .tp_dealloc = (destructor)pattern_dealloc,
    .tp_methods = pattern_methods,
    .tp_getset = pattern_getset,
};

/* PatternSet: a type's patterns tried in order, first match wins, each skipped without a search
 * when a literal it needs is absent from the line: the dispatch of matcher.py's generated
 * match(), here in C for a type whose every pattern runs on PCRE2. Lines PCRE2 does not take
 * (non-ASCII, a newline) go to that Python dispatch whole. */
typedef struct {
    PyObject_HEAD
    PyObject *patterns;         /* tuple of Pattern, in order */
    PyObject *literals;         /* list of bytes: every ASCII literal, kept alive */
    Py_ssize_t *clause_start;   /* per pattern: its clauses, n_patterns + 1 entries */
    Py_ssize_t *literal_start;  /* per clause: its literals, n_clauses + 1 entries */
    const char **literal;       /* per literal: its bytes, NULL when it is not ASCII */
    Py_ssize_t *literal_len;
    PyObject *fallback;         /* line -> (captures, tags), for lines PCRE2 does not take */
    PyObject *failure;          /* the tag of a line no pattern matched */
} PatternSetObject;

static void set_dealloc(PatternSetObject *self)
{
    Py_XDECREF(self->patterns);
    Py_XDECREF(self->literals);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->failure);
    PyMem_Free(self->clause_start);
    PyMem_Free(self->literal_start);
    PyMem_Free(self->literal);
    PyMem_Free(self->literal_len);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* PatternSet(((pattern, ((literal, ...), ...)), ...), fallback, failure_tag) */
static int set_init(PatternSetObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *entries, *fallback, *failure;
    if (!PyArg_ParseTuple(args, "O!OU", &PyTuple_Type, &entries, &fallback, &failure))
        return -1;
    if (self->patterns) {
        PyErr_SetString(PyExc_RuntimeError, "PatternSet is already set up");
        return -1;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(entries), n_clauses = 0, n_literals = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, e);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2
            || !PyObject_TypeCheck(PyTuple_GET_ITEM(entry, 0), &PatternType)
            || !PyTuple_Check(PyTuple_GET_ITEM(entry, 1))) {
            PyErr_SetString(PyExc_TypeError, "an entry is (Pattern, ((literal, ...), ...))");
            return -1;
        }
        if (((PatternObject *)PyTuple_GET_ITEM(entry, 0))->field_names == NULL) {
            PyErr_SetString(PyExc_ValueError, "a pattern without set_fields()");
            return -1;
        }
        PyObject *clauses = PyTuple_GET_ITEM(entry, 1);
        for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(clauses); c++) {
            PyObject *clause = PyTuple_GET_ITEM(clauses, c);
            if (!PyTuple_Check(clause)) {
                PyErr_SetString(PyExc_TypeError, "a clause is a tuple of literals");
                return -1;
            }
            n_clauses++;
            n_literals += PyTuple_GET_SIZE(clause);
        }
    }
    self->clause_start = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    self->literal_start = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_clauses + 1));
    self->literal = PyMem_Malloc(sizeof(char *) * (size_t)(n_literals + 1));
    self->literal_len = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_literals + 1));
    self->literals = PyList_New(0);
    self->patterns = PyTuple_New(n);
    if (!self->clause_start || !self->literal_start || !self->literal || !self->literal_len
        || !self->literals || !self->patterns) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t c_at = 0, l_at = 0;
    for (Py_ssize_t e = 0; e < n; e++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, e);
        PyTuple_SET_ITEM(self->patterns, e, Py_NewRef(PyTuple_GET_ITEM(entry, 0)));
        self->clause_start[e] = c_at;
        PyObject *clauses = PyTuple_GET_ITEM(entry, 1);
        for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(clauses); c++, c_at++) {
            PyObject *clause = PyTuple_GET_ITEM(clauses, c);
            self->literal_start[c_at] = l_at;
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(clause); k++, l_at++) {
                PyObject *text = PyTuple_GET_ITEM(clause, k);
                if (!PyUnicode_Check(text)) {
                    PyErr_SetString(PyExc_TypeError, "a literal is a str");
                    return -1;
                }
                self->literal[l_at] = NULL;   /* not ASCII: never in an ASCII line */
                self->literal_len[l_at] = 0;
                if (PyUnicode_IS_ASCII(text)) {
                    PyObject *bytes = PyUnicode_AsASCIIString(text);
                    if (bytes == NULL || PyList_Append(self->literals, bytes) < 0) {
                        Py_XDECREF(bytes);
                        return -1;
                    }
                    Py_DECREF(bytes);   /* the list keeps it */
                    self->literal[l_at] = PyBytes_AS_STRING(bytes);
                    self->literal_len[l_at] = PyBytes_GET_SIZE(bytes);
                }
            }
        }
    }
    self->clause_start[n] = c_at;
    self->literal_start[c_at] = l_at;
    self->fallback = Py_NewRef(fallback);
    self->failure = Py_NewRef(failure);
    return 0;
}

/* match(line) -> (captures, []) or (None, [failure]); the fallback's answer for a line PCRE2
 * does not take */
static PyObject *set_match(PatternSetObject *self, PyObject *line)
{
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "match() takes a str");
        return NULL;
    }
    if (self->patterns == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "PatternSet is not set up");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line))
        return PyObject_CallOneArg(self->fallback, line);
    Py_ssize_t length = PyUnicode_GET_LENGTH(line);
    const char *text = (const char *)PyUnicode_DATA(line);
    if (memchr(text, '\n', (size_t)length) != NULL)
        return PyObject_CallOneArg(self->fallback, line);
    Py_ssize_t n = PyTuple_GET_SIZE(self->patterns);
    for (Py_ssize_t e = 0; e < n; e++) {
        int wanted = 1;
        for (Py_ssize_t c = self->clause_start[e]; wanted && c < self->clause_start[e + 1]; c++) {
            int found = 0;
            for (Py_ssize_t k = self->literal_start[c]; !found && k < self->literal_start[c + 1];
                 k++) {
                const char *lit = self->literal[k];
                if (lit != NULL)
                    found = self->literal_len[k] == 0
                        || memmem(text, (size_t)length, lit, (size_t)self->literal_len[k]) != NULL;
            }
            wanted = found;
        }
        if (!wanted)
            continue;
        PyObject *captures = search((PatternObject *)PyTuple_GET_ITEM(self->patterns, e), line,
                                    build_captures);
        if (captures == NULL)
            return NULL;
        if (captures == Py_None) {
            Py_DECREF(captures);
            continue;
        }
        return Py_BuildValue("(N[])", captures);
    }
    return Py_BuildValue("(O[O])", Py_None, self->failure);
}

static PyMethodDef set_methods[] = {
    {"match", (PyCFunction)set_match, METH_O,
     "match(line) -> (captures, []) or (None, [failure tag])"},
    {NULL}
};

static PyTypeObject PatternSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logpipe.indexer.grok._pcre.PatternSet",
    .tp_doc = "PatternSet(entries, fallback, failure_tag): a type's patterns, first match wins",
    .tp_basicsize = sizeof(PatternSetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)set_init,
    .tp_dealloc = (destructor)set_dealloc,
    .tp_methods = set_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pcre",
    "grok searches by PCRE2's JIT (see indexer/grok/native.py)", -1, NULL,
};

/* VERSION: the libpcre2 this process runs (the one it was linked with may be older); JIT:
 * whether that library has a JIT for this machine */
static int add_version(PyObject *m)
{
    char version[64] = "";
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_VERSION, version);
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    if (PyModule_AddStringConstant(m, "VERSION", version) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "JIT", (long)jit);
}

PyMODINIT_FUNC PyInit__pcre(void)
{
    if (PyType_Ready(&PatternType) < 0 || PyType_Ready(&PatternSetType) < 0)
        return NULL;
    match_context = pcre2_match_context_create(NULL);
    compile_context = pcre2_compile_context_create(NULL);
    jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
    if (match_context == NULL || compile_context == NULL || jit_stack == NULL)
        return PyErr_NoMemory();
    /* Python's `.` stops at \n only, whatever newline convention this PCRE2 was built with */
    pcre2_set_newline(compile_context, PCRE2_NEWLINE_LF);
    pcre2_set_match_limit(match_context, MATCH_LIMIT);
    pcre2_jit_stack_assign(match_context, NULL, jit_stack);
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PatternType);
    Py_INCREF(&PatternSetType);
    if (PyModule_AddObject(m, "Pattern", (PyObject *)&PatternType) < 0
        || PyModule_AddObject(m, "PatternSet", (PyObject *)&PatternSetType) < 0
        || PyModule_AddIntConstant(m, "MULTILINE", F_MULTILINE) < 0
        || PyModule_AddIntConstant(m, "IGNORECASE", F_IGNORECASE) < 0
        || PyModule_AddIntConstant(m, "DOTALL", F_DOTALL) < 0
        || PyModule_AddIntConstant(m, "VERBOSE", F_VERBOSE) < 0
        || add_version(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
