/*
 * The update of auto's Kalman filters for one observation, in one call
 * (selector/policies/kalman.py, kalman_update).
 *
 * Why C: the update runs on every window played (the compressors' ratio filter, or the
 * delta arms' CPU factors), on a state of a few rows, where numpy's fixed cost per call is
 * the whole cost: four calls took about four microseconds a window on a loaded host, a
 * fifth of the window's decision and update. Here it is one pass over the state.
 *
 * observe(state, j, y, noise) -> None
 *   state: C-contiguous, writable float64, n rows of n + 1: the covariance, then the mean
 *   as the last column. The observation vector picks entries 0 and j (0 < j < n): a
 *   played window sees the part all arms share and its arm's own (the compressors' level
 *   and offset, or the delta arms' CPU factors); y is the observation, noise its
 *   variance. A probe sees more, and is numpy's (kalman.py): probes are not on every
 *   window's path. The update is
 *   kalman.py's numpy path operation by operation, in the same order, so both give
 *   the same bits (the build turns floating-point contraction off: a fused multiply-add
 *   rounds once where numpy rounds twice).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* the largest state handled on the stack (rows): far more compressing arms than any
 * configuration has */
#define MAX_ROWS 256

static PyObject *observe(PyObject *self, PyObject *args)
{
    Py_buffer view;
    PyObject *state;
    Py_ssize_t j;
    double y, noise;
    (void)self;
    if (!PyArg_ParseTuple(args, "Ondd", &state, &j, &y, &noise))
        return NULL;
    /* asked for its format and shape: a buffer taken by its length alone read a float32
     * state of 3 rows of 4 as 2 rows of 3 doubles, and an int64 one as doubles */
    if (PyObject_GetBuffer(state, &view, PyBUF_RECORDS) < 0)
        return NULL;
    const char *format = view.format == NULL ? "B" : view.format;
    if (format[0] == '@' || format[0] == '=' || format[0] == '<')
        format++; /* native order and size: the builds this runs on are little-endian */
    Py_ssize_t n = view.ndim == 2 ? view.shape[0] : 0;
    if (strcmp(format, "d") || view.itemsize != (Py_ssize_t)sizeof(double) || n < 2 ||
        view.shape[1] != n + 1 || n > MAX_ROWS || !PyBuffer_IsContiguous(&view, 'C') ||
        j <= 0 || j >= n) {
        PyErr_Format(PyExc_ValueError,
                     "observe needs a C-contiguous float64 state of n rows of n + 1 "
                     "(2 <= n <= %d) and 0 < j < n (%zd bytes, j %zd)",
                     MAX_ROWS, view.len, j);
        PyBuffer_Release(&view);
        return NULL;
    }
    double *s = view.buf;
    const Py_ssize_t w = n + 1;
    double row[MAX_ROWS + 1];
    for (Py_ssize_t i = 0; i < n; i++)
        row[i] = s[i * w] + s[i * w + j];
    const double predicted = s[n] + s[j * w + n];
    const double scale = row[0] + row[j];
    row[n] = predicted - y; /* x - gain * (predicted - y) is x + gain * (y - predicted) */
    const double denominator = scale + noise;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double gain = row[i] / denominator;
        double *r = s + i * w;
        for (Py_ssize_t c = 0; c < w; c++)
            r[c] -= gain * row[c];
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"observe", observe, METH_VARARGS,
     "observe(state, j, y, noise) -> None: one observation's Kalman update of a "
     "state of n rows of n + 1 float64 (covariance, then mean), in place."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.selector._filters",
    "The Kalman filters' update in one call (see kalman.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__filters(void) { return PyModule_Create(&module); }
