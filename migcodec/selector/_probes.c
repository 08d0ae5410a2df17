/*
 * What each of auto's probes is worth, in one call (selector/policies/auto/probes.py,
 * Auto._probe_values, the throughput objective with the CPU factor known).
 *
 * Why C: a probe decision runs on every window whose features are read, and its price is
 * charged to that window with the features (a replay charges it as the engine does). In
 * Python its valuation is a loop over each compressing arm and each of seven quadrature
 * points of its log ratio, a few dozen float operations each: about 18 microseconds of a
 * decision of about 50, where the same arithmetic here takes well under one. The Python
 * loop stays as the fall-back, operation by operation the same, so both give the same
 * bits (the build turns floating-point contraction off: a fused multiply-add rounds once
 * where Python rounds twice).
 *
 * probe_values(state, grid, compressors, nodes, factors, payload, window)
 *     -> (gains, costs)
 *   state: the compressors' ratio filter (kalman.py, RatioFilter), C-contiguous float64,
 *     n rows of n + 1 (covariance, then the mean as the last column), n = 2 * c + 2 for
 *     c compressing arms: compressor i's log ratio is entry 0 plus entry 2 + i.
 *   grid: every arm's per-page CPU cost at (steps + 1) log ratios, k rows (float64).
 *   compressors: c rows of (arm, per call, per zero page) (float64).
 *   nodes: the quadrature's points, then its weights (float64, 2 * q).
 *   factors: k floats, each arm's CPU factor (the shared factor comes in window).
 *   payload: k floats, each arm's predicted payload per non-zero page (a probe's cost is
 *     priced at its ratio).
 *   window: (probe pages, probe noise variance of one page, least loss, second least
 *     loss, best arm, pages, zero pages, non-zero pages, calls, shared factor,
 *     1 / workers, 1 / link, page size, log page size, bytes per run, grid scale)
 *   gains, costs: per compressor, the loss a probe is expected to avoid and its CPU
 *     seconds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* a list of k floats (or numbers) into out; 0 and an exception if it is not one */
static int read_floats(PyObject *list, Py_ssize_t k, double *out, const char *what)
{
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != k) {
        PyErr_Format(PyExc_ValueError, "probe_values needs %s as a list of %zd floats", what,
                     k);
        return 0;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        out[i] = PyFloat_Check(item) ? PyFloat_AS_DOUBLE(item) : PyFloat_AsDouble(item);
        if (out[i] == -1.0 && PyErr_Occurred())
            return 0;
    }
    return 1;
}

/* the step of the grid at log ratio x >= 0 (auto/common.py, _grid_step) */
static Py_ssize_t grid_step(double x, double scale, Py_ssize_t steps)
{
    double at = x * scale;
    return at < (double)steps ? (Py_ssize_t)at : steps;
}

/* the largest arm count handled (on the stack): far more than any configuration has */
#define MAX_ARMS 256
/* the most quadrature points */
#define MAX_NODES 64

static PyObject *probe_values(PyObject *self, PyObject *args)
{
    Py_buffer state = {0}, grid = {0}, table = {0}, quad = {0};
    PyObject *factor_list, *payload_list, *gains = NULL, *costs = NULL;
    double m, noise1, least, second, best_arm, n, zero, nz, calls, shared, to_cpu, to_link;
    double page_size, log_page, run_bytes, scale;
    double factors[MAX_ARMS], payload[MAX_ARMS];
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*OO(dddddddddddddddd)", &state, &grid, &table, &quad,
                          &factor_list, &payload_list, &m, &noise1, &least, &second,
                          &best_arm, &n, &zero, &nz, &calls, &shared, &to_cpu, &to_link,
                          &page_size, &log_page, &run_bytes, &scale))
        return NULL;
    const Py_ssize_t c = table.len / (Py_ssize_t)(3 * sizeof(double));
    const Py_ssize_t size = 2 * c + 2;
    const Py_ssize_t q = quad.len / (Py_ssize_t)(2 * sizeof(double));
    const Py_ssize_t k = PyList_Check(factor_list) ? PyList_GET_SIZE(factor_list) : -1;
    const Py_ssize_t row = k > 0 ? grid.len / (Py_ssize_t)sizeof(double) / k : 0;
    if (table.len != c * 3 * (Py_ssize_t)sizeof(double) ||
        state.len != size * (size + 1) * (Py_ssize_t)sizeof(double) ||
        quad.len != q * 2 * (Py_ssize_t)sizeof(double) || q < 1 || q > MAX_NODES || k < 1 ||
        k > MAX_ARMS || row < 1 || grid.len != k * row * (Py_ssize_t)sizeof(double) ||
        m <= 0.0) {
        PyErr_Format(PyExc_ValueError,
                     "probe_values needs a filter state of 2c + 2 rows of 2c + 3 float64 for "
                     "c compressors of 3 float64, 1 to %d points and weights, 1 to %d arms "
                     "whose grid rows are float64 of one length, and probe pages > 0 "
                     "(state %zd, compressors %zd, points %zd, grid %zd bytes)",
                     MAX_NODES, MAX_ARMS, state.len, table.len, quad.len, grid.len);
        goto done;
    }
    if (!read_floats(factor_list, k, factors, "factors") ||
        !read_floats(payload_list, k, payload, "payload"))
        goto done;
    const double *s = state.buf, *costs_grid = grid.buf, *rows = table.buf;
    const double *nodes = quad.buf, *weights = nodes + q;
    const Py_ssize_t steps = row - 1, w = size + 1;
    const double noise = noise1 / m, base_out = n + calls * run_bytes;
    gains = PyList_New(c);
    costs = PyList_New(c);
    if (gains == NULL || costs == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < c; i++) {
        const double arm_f = rows[3 * i], per_call = rows[3 * i + 1], per_zero = rows[3 * i + 2];
        const Py_ssize_t arm = (Py_ssize_t)arm_f, j = 2 + i;
        if (arm_f != (double)arm || arm < 0 || arm >= k) {
            PyObject *named = PyFloat_FromDouble(arm_f);
            if (named != NULL) {
                PyErr_Format(PyExc_ValueError,
                             "probe_values: compressor %zd names arm %R, not one of 0 to %zd",
                             i, named, k - 1);
                Py_DECREF(named);
            }
            goto done;
        }
        /* the estimate and the spread a probe leaves of it (Auto._probe_spreads) */
        const double mean = s[size] + s[j * w + size];
        const double v = s[0] + s[j * w + j] + 2 * s[j];
        const double sd = v > 0.0 ? sqrt(v * v / (v + noise)) : 0.0;
        const double *curve = costs_grid + arm * row;
        const double fixed = per_call * calls + per_zero * zero;
        const double factor = factors[arm] * shared;
        double gain = 0.0;
        for (Py_ssize_t p = 0; p < q; p++) {
            double lr = mean + sd * nodes[p];
            lr = lr > 0.0 ? (lr < log_page ? lr : log_page) : 0.0;
            const double busy = (fixed + curve[grid_step(lr, scale, steps)] * nz) * factor * to_cpu;
            const double sending = (base_out + nz * page_size / exp(lr)) * to_link;
            const double trial = busy > sending ? busy : sending;
            const double saved = arm == (Py_ssize_t)best_arm ? trial - second : least - trial;
            if (saved > 0.0)
                gain += weights[p] * saved;
        }
        double probed = log(page_size / payload[arm]);
        probed = probed > 0.0 ? probed : 0.0;
        const double cost = (per_call + curve[grid_step(probed, scale, steps)] * m) * factor;
        PyObject *g = PyFloat_FromDouble(gain), *t = PyFloat_FromDouble(cost);
        if (g == NULL || t == NULL) {
            Py_XDECREF(g);
            Py_XDECREF(t);
            goto done;
        }
        PyList_SET_ITEM(gains, i, g);
        PyList_SET_ITEM(costs, i, t);
    }
    PyBuffer_Release(&state);
    PyBuffer_Release(&grid);
    PyBuffer_Release(&table);
    PyBuffer_Release(&quad);
    return Py_BuildValue("(NN)", gains, costs);
done:
    Py_XDECREF(gains);
    Py_XDECREF(costs);
    PyBuffer_Release(&state);
    PyBuffer_Release(&grid);
    PyBuffer_Release(&table);
    PyBuffer_Release(&quad);
    return NULL;
}

static PyMethodDef methods[] = {
    {"probe_values", probe_values, METH_VARARGS,
     "probe_values(state, grid, compressors, nodes, factors, payload, window) -> "
     "(gains, costs): what each compressor's probe is expected to save on the window and "
     "what it costs (see _probes.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.selector._probes",
    "auto's probe valuation in one call (see auto/probes.py, Auto._probe_values).", -1, methods,
};

PyMODINIT_FUNC PyInit__probes(void) { return PyModule_Create(&module); }
