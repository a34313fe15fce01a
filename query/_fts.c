/* logpipe.query._fts: the embedded store's full-text body of an ASCII message, in one C pass.
 *
 * query/analyzer.py's fts_text hands FTS5 (unicode61 with '.', ':', "'", ',', ';' and '_' as
 * token characters) the message with every '.', ':', "'", ',' or ';' that does not join a token
 * turned into a space, so that FTS5 finds exactly the tokens Elasticsearch's standard analyzer
 * makes. One of those characters joins a token when it sits between two ASCII letters and is
 * '.', ':' or "'" (mail.example.com, don't), or between two ASCII digits and is '.', ',', ';' or
 * "'" (10.0.0.8, 1,000). Python does it with one regular expression substitution,
 * ``[.:',;](?!(?<=[A-Za-z][.:'])[A-Za-z])(?!(?<=[0-9][.,;'])[0-9])`` -> " ", which costs ~2.8 us
 * on a mail line (a tenth of what the embedded store spends on a line outside SQLite); this is
 * the same rule as a loop over the bytes. Both read the original text on either side of each
 * character, so the answers are identical (tests/test_fts_native.py compares them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int is_letter(Py_UCS1 c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(Py_UCS1 c) { return c >= '0' && c <= '9'; }

/* Whether the punctuation at text[i] stays (joins the token around it). */
static int joins(const Py_UCS1 *text, Py_ssize_t i, Py_ssize_t n)
{
    if (i == 0 || i + 1 >= n)
        return 0;
    Py_UCS1 c = text[i], before = text[i - 1], after = text[i + 1];
    if ((c == '.' || c == ':' || c == '\'') && is_letter(before) && is_letter(after))
        return 1;
    if ((c == '.' || c == ',' || c == ';' || c == '\'') && is_digit(before) && is_digit(after))
        return 1;
    return 0;
}

static int is_mark(Py_UCS1 c) { return c == '.' || c == ':' || c == '\'' || c == ',' || c == ';'; }

static PyObject *ascii_body(PyObject *module, PyObject *arg)
{
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_ValueError, "ascii_body takes ASCII text only");
        return NULL;
    }
    const Py_UCS1 *text = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    Py_ssize_t first = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_mark(text[i]) && !joins(text, i, n)) {
            first = i;
            break;
        }
    }
    if (first < 0) {  /* nothing to blank: the text itself, as re.sub gives back */
        Py_INCREF(arg);
        return arg;
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL)
        return NULL;
    Py_UCS1 *body = PyUnicode_1BYTE_DATA(out);
    memcpy(body, text, (size_t)n);
    for (Py_ssize_t i = first; i < n; i++) {
        if (is_mark(text[i]) && !joins(text, i, n))
            body[i] = ' ';
    }
    return out;
}

static PyMethodDef methods[] = {
    {"ascii_body", ascii_body, METH_O,
     "ascii_body(text) -> text with every '.', ':', \"'\", ',', ';' that joins no token as a space"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "logpipe.query._fts",
    "The embedded store's full-text body of an ASCII message (see query/analyzer.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fts(void) { return PyModule_Create(&module); }
