/*
 * Page scans over a whole batch in one call: zero pages, and how pages changed.
 *
 * Why C: the framework probes every batch before encoding it, and numpy's fixed cost per
 * call (four calls for "first | last word of each page, any zero?") is a few microseconds,
 * which is several percent of an LZ4 call on 64 pages. One pass here settles the common
 * case (no zero page) with two loads per page and no allocation.
 *
 * zero_pages(buffer, page_size) -> bytes | None
 *   None when no page of the C-contiguous buffer is all zero; otherwise n_pages bytes,
 *   1 for each all-zero page. page_size must be a positive multiple of 8 and divide the
 *   buffer's length.
 *
 * page_changes(new, old, page_size) -> bytes
 *   Per page, four native int32: 8-byte words that differ, bytes that differ, runs of
 *   consecutive differing words and runs of consecutive differing bytes (within the page). What a selector predicts a delta
 *   codec's payload from (see changes.py): numpy needs a dozen calls and temporaries for
 *   it, a few microseconds each, where this is one pass at memory speed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t load_word(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* alignment-safe; compiles to one load */
    return v;
}

/* Whole-page scan, only for pages whose first and last words are zero. Checks in 256-byte
 * blocks so a page that is mostly zero but not entirely stops at its first non-zero block. */
static int page_is_zero(const unsigned char *page, Py_ssize_t page_size)
{
    Py_ssize_t off = 0;
    for (; off + 256 <= page_size; off += 256) {
        uint64_t acc = 0;
        for (int i = 0; i < 256; i += 8)
            acc |= load_word(page + off + i);
        if (acc)
            return 0;
    }
    uint64_t acc = 0;
    for (; off < page_size; off += 8)
        acc |= load_word(page + off);
    return acc == 0;
}

static PyObject *zero_pages(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t page_size;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*n", &view, &page_size))
        return NULL;
    if (page_size <= 0 || page_size % 8 || view.len % page_size) {
        PyErr_Format(PyExc_ValueError,
                     "zero_pages needs a page size that is a positive multiple of 8 and "
                     "divides the buffer (%zd bytes, page size %zd)",
                     view.len, page_size);
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *base = view.buf;
    Py_ssize_t n = view.len / page_size;
    Py_ssize_t first_candidate = -1;
    PyObject *result = NULL;

    /* The common case (no zero page) is two loads per page: far cheaper than handing the
     * GIL to another thread and taking it back, which under contention costs a thread
     * switch. Only the full scans of candidate pages below release it. */
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *page = base + i * page_size;
        if (!(load_word(page) | load_word(page + page_size - 8)) && page_is_zero(page, page_size)) {
            first_candidate = i;
            break;
        }
    }

    if (first_candidate < 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    result = PyBytes_FromStringAndSize(NULL, n);
    if (result != NULL) {
        unsigned char *mask = (unsigned char *)PyBytes_AS_STRING(result);
        memset(mask, 0, (size_t)n);
        mask[first_candidate] = 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = first_candidate + 1; i < n; i++) {
            const unsigned char *page = base + i * page_size;
            mask[i] = !(load_word(page) | load_word(page + page_size - 8)) &&
                      page_is_zero(page, page_size);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    return result;
}

/* Which bytes of x are not zero, as 8 bits (bit i: byte i in memory order on a
 * little-endian load): fold each byte onto its lowest bit, then gather those bits. */
static inline unsigned byte_mask(uint64_t x)
{
    x |= x >> 4;
    x |= x >> 2;
    x |= x >> 1;
    return (unsigned)(((x & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56);
}

static PyObject *page_changes(PyObject *self, PyObject *args)
{
    Py_buffer new_view, old_view;
    Py_ssize_t page_size;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*n", &new_view, &old_view, &page_size))
        return NULL;
    if (page_size <= 0 || page_size % 8 || new_view.len % page_size ||
        new_view.len != old_view.len) {
        PyErr_Format(PyExc_ValueError,
                     "page_changes needs two buffers of equal length (%zd and %zd bytes) and a "
                     "page size (%zd) that is a positive multiple of 8 and divides them",
                     new_view.len, old_view.len, page_size);
        PyBuffer_Release(&new_view);
        PyBuffer_Release(&old_view);
        return NULL;
    }
    Py_ssize_t n = new_view.len / page_size, words = page_size / 8;
    PyObject *result = PyBytes_FromStringAndSize(NULL, n * 4 * (Py_ssize_t)sizeof(int32_t));
    if (result != NULL) {
        int32_t *out = (int32_t *)PyBytes_AS_STRING(result);
        const unsigned char *a = new_view.buf, *b = old_view.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t changed = 0, differing = 0, runs = 0, byte_runs = 0;
            unsigned word_before = 0; /* whether the previous word differed */
            unsigned byte_before = 0; /* whether the previous byte differed */
            for (Py_ssize_t w = 0; w < words; w++) {
                Py_ssize_t off = i * page_size + w * 8;
                uint64_t x = load_word(a + off) ^ load_word(b + off);
                if (x) {
                    unsigned m = byte_mask(x);
                    changed++;
                    differing += __builtin_popcount(m);
                    runs += !word_before;
                    /* a byte run starts at a differing byte whose predecessor does not */
                    byte_runs += __builtin_popcount(m & ~((m << 1) | byte_before) & 0xFFu);
                    word_before = 1;
                    byte_before = m >> 7;
                } else {
                    word_before = 0;
                    byte_before = 0;
                }
            }
            out[4 * i] = changed;
            out[4 * i + 1] = differing;
            out[4 * i + 2] = runs;
            out[4 * i + 3] = byte_runs;
        }
    }
    PyBuffer_Release(&new_view);
    PyBuffer_Release(&old_view);
    return result;
}

static PyMethodDef methods[] = {
    {"zero_pages", zero_pages, METH_VARARGS,
     "zero_pages(buffer, page_size) -> bytes | None: 1 per all-zero page, None if none."},
    {"page_changes", page_changes, METH_VARARGS,
     "page_changes(new, old, page_size) -> bytes: int32 changed words, differing bytes, "
     "runs of changed words and runs of differing bytes per page."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.codecs._pagescan",
    "Page scans over a whole batch in one call (see zero.py and changes.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__pagescan(void) { return PyModule_Create(&module); }
