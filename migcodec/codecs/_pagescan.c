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
 * page_changes(new, old, page_size[, rows]) -> bytes
 *   Per page (per entry of rows, int64 page indices into both buffers, when given: a sample
 *   is read in place rather than gathered first), four native int32: 8-byte words that
 *   differ, bytes that differ, runs of consecutive differing words and runs of consecutive
 *   differing bytes (within the page). What a selector predicts a delta
 *   codec's payload from (see changes.py): numpy needs a dozen calls and temporaries for
 *   it, a few microseconds each, where this is one pass at memory speed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* Set bits of x. The builtin is one instruction where the compiler may assume the CPU has
 * one (count_changes is compiled twice on x86-64 Linux, with and without it, and the loader
 * picks); otherwise it is a library call, and two calls per changed word made a rewritten
 * page cost 7 ns a word. Compilers without the builtin add the bits in registers. */
#if defined(__GNUC__)
#define popcount64(x) ((unsigned)__builtin_popcountll(x))
#else
static inline unsigned popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__POPCNT__)
#define WITH_POPCNT_CLONE __attribute__((target_clones("popcnt", "default")))
#else
#define WITH_POPCNT_CLONE
#endif

/* Which of 64 bytes differ, one bit per byte in memory order. */
static inline uint64_t differing_bytes64(const unsigned char *a, const unsigned char *b)
{
#if defined(__SSE2__)
    uint64_t equal = 0;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(a + 16 * k));
        __m128i y = _mm_loadu_si128((const __m128i *)(b + 16 * k));
        equal |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) << (16 * k);
    }
    return ~equal;
#else
    uint64_t mask = 0;
    for (int k = 0; k < 8; k++)
        mask |= (uint64_t)byte_mask(load_word(a + 8 * k) ^ load_word(b + 8 * k)) << (8 * k);
    return mask;
#endif
}

/* The four counts of one page. Works on 64 bytes at a time: one mask of differing bytes
 * gives the byte counts and byte runs, and its bytes folded to one bit each (a word differs
 * when any of its bytes does) give the word counts and word runs; a run continues across
 * 64-byte blocks through the last bit of the previous block. Words past the last whole
 * block (page sizes that are not a multiple of 64) are counted one at a time. */
WITH_POPCNT_CLONE
static void count_changes(const unsigned char *a, const unsigned char *b, Py_ssize_t page_size,
                          int32_t *out)
{
    uint64_t changed = 0, differing = 0, runs = 0, byte_runs = 0;
    uint64_t word_before = 0, byte_before = 0; /* whether the previous word / byte differed */
    Py_ssize_t off = 0;
    for (; off + 64 <= page_size; off += 64) {
        uint64_t d = differing_bytes64(a + off, b + off);
        if (!d) {
            word_before = byte_before = 0;
            continue;
        }
        uint64_t w = byte_mask(d);
        differing += popcount64(d);
        byte_runs += popcount64(d & ~((d << 1) | byte_before));
        changed += popcount64(w);
        runs += popcount64(w & ~((w << 1) | word_before) & 0xFFu);
        byte_before = d >> 63;
        word_before = w >> 7;
    }
    for (; off < page_size; off += 8) {
        uint64_t d = byte_mask(load_word(a + off) ^ load_word(b + off));
        uint64_t w = d != 0;
        differing += popcount64(d);
        byte_runs += popcount64(d & ~((d << 1) | byte_before) & 0xFFu);
        changed += w;
        runs += w & !word_before;
        byte_before = d >> 7;
        word_before = w;
    }
    out[0] = (int32_t)changed;
    out[1] = (int32_t)differing;
    out[2] = (int32_t)runs;
    out[3] = (int32_t)byte_runs;
}

static PyObject *page_changes(PyObject *self, PyObject *args)
{
    Py_buffer new_view, old_view, rows_view = {0};
    Py_ssize_t page_size;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*n|y*", &new_view, &old_view, &page_size, &rows_view))
        return NULL;
    if (page_size <= 0 || page_size % 8 || new_view.len % page_size ||
        new_view.len != old_view.len) {
        PyErr_Format(PyExc_ValueError,
                     "page_changes needs two buffers of equal length (%zd and %zd bytes) and a "
                     "page size (%zd) that is a positive multiple of 8 and divides them",
                     new_view.len, old_view.len, page_size);
        goto done;
    }
    Py_ssize_t n_pages = new_view.len / page_size, n = n_pages;
    const int64_t *rows = NULL;
    if (rows_view.buf != NULL) {
        if (rows_view.len % (Py_ssize_t)sizeof(int64_t)) {
            PyErr_Format(PyExc_ValueError,
                         "page_changes needs rows as int64 (a buffer of %zd bytes is not)",
                         rows_view.len);
            goto done;
        }
        rows = rows_view.buf;
        n = rows_view.len / (Py_ssize_t)sizeof(int64_t);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (rows[i] < 0 || rows[i] >= n_pages) {
                PyErr_Format(PyExc_IndexError, "page_changes: row %lld is not a page of %zd",
                             (long long)rows[i], n_pages);
                goto done;
            }
        }
    }
    result = PyBytes_FromStringAndSize(NULL, n * 4 * (Py_ssize_t)sizeof(int32_t));
    if (result != NULL) {
        int32_t *out = (int32_t *)PyBytes_AS_STRING(result);
        const unsigned char *a = new_view.buf, *b = old_view.buf;
        /* other threads run meanwhile on batches big enough to pay for the handover; a few
         * sampled pages take less time than giving the GIL away and getting it back */
        PyThreadState *released = n * page_size >= (1 << 18) ? PyEval_SaveThread() : NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t at = (rows != NULL ? (Py_ssize_t)rows[i] : i) * page_size;
            count_changes(a + at, b + at, page_size, out + 4 * i);
        }
        if (released != NULL)
            PyEval_RestoreThread(released);
    }
done:
    PyBuffer_Release(&new_view);
    PyBuffer_Release(&old_view);
    if (rows_view.buf != NULL)
        PyBuffer_Release(&rows_view);
    return result;
}

static PyMethodDef methods[] = {
    {"zero_pages", zero_pages, METH_VARARGS,
     "zero_pages(buffer, page_size) -> bytes | None: 1 per all-zero page, None if none."},
    {"page_changes", page_changes, METH_VARARGS,
     "page_changes(new, old, page_size[, rows]) -> bytes: int32 changed words, differing "
     "bytes, runs of changed words and runs of differing bytes per page (per row of rows)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.codecs._pagescan",
    "Page scans over a whole batch in one call (see zero.py and changes.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__pagescan(void) { return PyModule_Create(&module); }
