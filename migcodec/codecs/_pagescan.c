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
 *
 * sample_scan(pages, old | None, page_size, rows | None, held | None, stride, formulas)
 *   Everything a selector's cheap features read of a window's sample (selector/scan.py), in
 *   one call over the sampled rows in place: zero flags, the entropy of the strided byte
 *   histogram of the first and last non-zero sampled pages, the change counts of the
 *   non-zero pages the destination holds, their changed words and runs of changed bytes
 *   summed, the sums of the squared changed words and of changed words times runs of changed
 *   bytes (how the two vary together from page to page), and per (kind, param) formula its
 *   delta estimate summed over them.
 *   The features cost every window they are read on; as a dozen numpy calls on a few dozen
 *   pages they were mostly fixed costs per call, and held the GIL the encoders need.
 *
 * estimate_sums(counts, page_size, formulas) -> tuple
 *   The same sums over counts in page_changes' layout (how tests hold them to the
 *   estimate_sizes methods they stand for).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "_page_words.h"

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
        if (page_is_zero(page, page_size)) {
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
            mask[i] = page_is_zero(page, page_size);
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


/* Kinds of per-page delta estimate sample_scan and estimate_sums add up: the formulas of
 * the estimate_sizes methods of the built-in delta codecs (features.py maps each method to
 * its kind, and tests check the sums against the methods for every count). */
enum { EST_RECORD = 0, EST_CAPPED_RECORD = 1, EST_XBZRLE = 2, EST_KINDS = 3 };
#define EST_MAX 16

/* One page's estimate from its four counts; param is the entry cap of EST_CAPPED_RECORD. */
static inline int64_t estimate_one(int kind, int64_t param, const int32_t *c, int64_t page_size)
{
    int64_t words = c[0], differing = c[1], byte_runs = c[3], size;
    if (words == 0)
        return 0;
    switch (kind) {
    case EST_RECORD: /* DeltaCodec: 10 bytes per changed word and a u16 length */
        size = 10 * words + 2;
        return size >= page_size ? page_size : size;
    case EST_CAPPED_RECORD: /* DSA: the same, raw past the entry cap */
        return words > param ? page_size : 10 * words + 2;
    default: { /* XBZRLE: bytes, a length byte per run, one or two bytes of gap per run */
        int64_t gap = (page_size - differing) > 127 * (byte_runs > 1 ? byte_runs : 1);
        size = differing + 2 * byte_runs + gap * byte_runs + 2;
        return size >= page_size - 8 ? page_size : size;
    }
    }
}

/* Reads the formulas argument: a sequence of (kind, param) pairs. */
static int read_formulas(PyObject *formulas, int *kinds, int64_t *params, Py_ssize_t *count)
{
    PyObject *seq = PySequence_Fast(formulas, "formulas must be a sequence of (kind, param)");
    if (seq == NULL)
        return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    if (k > EST_MAX) {
        PyErr_Format(PyExc_ValueError, "at most %d formulas, got %zd", EST_MAX, k);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        long long param;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item)) { /* PyArg_ParseTuple takes a tuple, else a SystemError */
            PyErr_Format(PyExc_TypeError, "formula %zd is not a (kind, param) tuple", i);
            Py_DECREF(seq);
            return -1;
        }
        if (!PyArg_ParseTuple(item, "iL", &kinds[i], &param)) {
            Py_DECREF(seq);
            return -1;
        }
        if (kinds[i] < 0 || kinds[i] >= EST_KINDS) {
            PyErr_Format(PyExc_ValueError, "no estimate formula of kind %d", kinds[i]);
            Py_DECREF(seq);
            return -1;
        }
        params[i] = param;
    }
    *count = k;
    Py_DECREF(seq);
    return 0;
}

/* Each formula's estimate summed over n pages' counts (four int32 per page). */
static void add_estimates(const int32_t *counts, Py_ssize_t n, int64_t page_size, Py_ssize_t k,
                          const int *kinds, const int64_t *params, int64_t *sums)
{
    for (Py_ssize_t j = 0; j < k; j++) {
        int64_t sum = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            sum += estimate_one(kinds[j], params[j], counts + 4 * i, page_size);
        sums[j] = sum;
    }
}

static PyObject *sums_tuple(const int64_t *sums, Py_ssize_t k)
{
    PyObject *out = PyTuple_New(k);
    for (Py_ssize_t j = 0; out != NULL && j < k; j++) {
        PyObject *v = PyLong_FromLongLong(sums[j]);
        if (v == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, j, v);
    }
    return out;
}

static PyObject *estimate_sums(PyObject *self, PyObject *args)
{
    Py_buffer counts;
    Py_ssize_t page_size, k;
    PyObject *formulas;
    int kinds[EST_MAX];
    int64_t params[EST_MAX], sums[EST_MAX];
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nO", &counts, &page_size, &formulas))
        return NULL;
    PyObject *result = NULL;
    if (counts.len % (4 * (Py_ssize_t)sizeof(int32_t))) {
        PyErr_Format(PyExc_ValueError, "estimate_sums needs four int32 per page (%zd bytes)",
                     counts.len);
    } else if (read_formulas(formulas, kinds, params, &k) == 0) {
        add_estimates(counts.buf, counts.len / (4 * (Py_ssize_t)sizeof(int32_t)), page_size, k,
                      kinds, params, sums);
        result = sums_tuple(sums, k);
    }
    PyBuffer_Release(&counts);
    return result;
}

/* Histogram of every stride-th byte of the pages first and last (one page when equal), read
 * as if the two were back to back: what numpy's pages[[first, last]].reshape(-1)[::stride]
 * holds. Returns how many bytes it counted. */
static Py_ssize_t strided_histogram(const unsigned char *first, const unsigned char *last,
                                    Py_ssize_t page_size, Py_ssize_t stride, int64_t *hist)
{
    Py_ssize_t total = 0, off = 0;
    for (; off < page_size; off += stride, total++)
        hist[first[off]]++;
    if (last == NULL)
        return total;
    for (off -= page_size; off < page_size; off += stride, total++)
        hist[last[off]]++;
    return total;
}

/* Shannon entropy in bits per byte of a histogram of total bytes: log2(total) minus the sum
 * of c log2 c over the counts, over total (histogram_entropy in selector/scan.py; the same up to
 * rounding: the sum is taken in another order). Here because the five numpy calls it took
 * on the histogram cost a quarter of a small window's features. */
static double histogram_entropy(const int64_t *hist, Py_ssize_t total)
{
    if (total <= 0)
        return 0.0;
    double sum = 0.0;
    for (int b = 0; b < 256; b++) {
        if (hist[b] > 1)
            sum += (double)hist[b] * log2((double)hist[b]);
    }
    double bits = log2((double)total) - sum / (double)total;
    return bits > 0.0 ? bits : 0.0;
}

/* What sample_scan computes with the GIL released when the sample is large. */
struct scan {
    const unsigned char *new, *old, *held;
    const int64_t *rows;
    Py_ssize_t n, page_size, stride, k;
    unsigned char *zero;
    int32_t *counts;
    int64_t hist[256];
    const int *kinds;
    const int64_t *params;
    Py_ssize_t nonzero, first, last, kept, total;
    int64_t words, runs, words_sq, words_runs, sums[EST_MAX];
};

static void run_scan(struct scan *s)
{
    s->first = s->last = -1;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        Py_ssize_t row = s->rows != NULL ? (Py_ssize_t)s->rows[i] : i;
        const unsigned char *page = s->new + row * s->page_size;
        int zero = page_is_zero(page, s->page_size);
        s->zero[i] = (unsigned char)zero;
        if (zero)
            continue;
        s->nonzero++;
        if (s->first < 0)
            s->first = row;
        s->last = row;
        if (s->old == NULL || (s->held != NULL && !s->held[row]))
            continue;
        int32_t *out = s->counts + 4 * s->kept++;
        count_changes(page, s->old + row * s->page_size, s->page_size, out);
        s->words += out[0];
        s->runs += out[3];
        s->words_sq += (int64_t)out[0] * out[0];
        s->words_runs += (int64_t)out[0] * out[3];
    }
    if (s->first >= 0) {
        const unsigned char *last =
            s->last == s->first ? NULL : s->new + s->last * s->page_size;
        s->total = strided_histogram(s->new + s->first * s->page_size, last, s->page_size,
                                     s->stride, s->hist);
    }
    add_estimates(s->counts, s->kept, s->page_size, s->k, s->kinds, s->params, s->sums);
}

/* Checks sample_scan's buffers; sets an exception and returns -1 when one is wrong. */
static int check_scan(const Py_buffer *new_view, const Py_buffer *old_view,
                      const Py_buffer *rows_view, const Py_buffer *held_view,
                      Py_ssize_t page_size, Py_ssize_t stride)
{
    if (page_size <= 0 || page_size % 8 || new_view->len % page_size || stride <= 0 ||
        (old_view->buf != NULL && old_view->len != new_view->len)) {
        PyErr_Format(PyExc_ValueError,
                     "sample_scan needs pages and old versions of equal length (%zd and %zd "
                     "bytes), a page size (%zd) that is a positive multiple of 8 and divides "
                     "them, and a positive stride (%zd)",
                     new_view->len, old_view->buf != NULL ? old_view->len : new_view->len,
                     page_size, stride);
        return -1;
    }
    Py_ssize_t n_pages = new_view->len / page_size;
    if (held_view->buf != NULL && held_view->len != n_pages) {
        PyErr_Format(PyExc_ValueError, "sample_scan needs one held flag per page (%zd for %zd)",
                     held_view->len, n_pages);
        return -1;
    }
    if (rows_view->buf == NULL)
        return 0;
    if (rows_view->len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_Format(PyExc_ValueError,
                     "sample_scan needs rows as int64 (a buffer of %zd bytes is not)",
                     rows_view->len);
        return -1;
    }
    const int64_t *rows = rows_view->buf;
    for (Py_ssize_t i = 0; i < rows_view->len / (Py_ssize_t)sizeof(int64_t); i++) {
        if (rows[i] < 0 || rows[i] >= n_pages) {
            PyErr_Format(PyExc_IndexError, "sample_scan: row %lld is not a page of %zd",
                         (long long)rows[i], n_pages);
            return -1;
        }
    }
    return 0;
}

/* Gets a buffer from obj unless it is None (then view->buf stays NULL). */
static int optional_buffer(PyObject *obj, Py_buffer *view)
{
    if (obj == Py_None)
        return 0;
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

static PyObject *scan_result(const struct scan *s, PyObject *zero, PyObject *counts)
{
    PyObject *sums = sums_tuple(s->sums, s->k);
    if (sums == NULL)
        return NULL;
    if (s->nonzero == s->n)
        zero = Py_None;
    if (_PyBytes_Resize(&counts, s->kept * 4 * (Py_ssize_t)sizeof(int32_t)) < 0) {
        Py_DECREF(sums);
        return NULL;
    }
    PyObject *out = Py_BuildValue("(OnOnLLLLNd)", zero, s->nonzero,
                                  s->old != NULL && s->nonzero ? counts : Py_None, s->kept,
                                  (long long)s->words, (long long)s->runs,
                                  (long long)s->words_sq, (long long)s->words_runs, sums,
                                  s->first < 0 ? 0.0 : histogram_entropy(s->hist, s->total));
    Py_DECREF(counts);
    return out;
}

static PyObject *sample_scan(PyObject *self, PyObject *args)
{
    Py_buffer new_view, old_view = {0}, rows_view = {0}, held_view = {0};
    PyObject *old_obj, *rows_obj, *held_obj, *formulas, *result = NULL;
    PyObject *zero = NULL, *counts = NULL;
    Py_ssize_t page_size, stride;
    int kinds[EST_MAX];
    int64_t params[EST_MAX];
    struct scan s = {0};
    (void)self;
    if (!PyArg_ParseTuple(args, "y*OnOOnO", &new_view, &old_obj, &page_size, &rows_obj,
                          &held_obj, &stride, &formulas))
        return NULL;
    if (optional_buffer(old_obj, &old_view) < 0 || optional_buffer(rows_obj, &rows_view) < 0 ||
        optional_buffer(held_obj, &held_view) < 0 ||
        check_scan(&new_view, &old_view, &rows_view, &held_view, page_size, stride) < 0 ||
        read_formulas(formulas, kinds, params, &s.k) < 0)
        goto done;
    s.n = rows_view.buf != NULL ? rows_view.len / (Py_ssize_t)sizeof(int64_t)
                                : new_view.len / page_size;
    zero = PyBytes_FromStringAndSize(NULL, s.n);
    counts = PyBytes_FromStringAndSize(NULL, s.n * 4 * (Py_ssize_t)sizeof(int32_t));
    if (zero == NULL || counts == NULL)
        goto done;
    s.new = new_view.buf;
    s.old = old_view.buf;
    s.held = held_view.buf;
    s.rows = rows_view.buf;
    s.page_size = page_size;
    s.stride = stride;
    s.zero = (unsigned char *)PyBytes_AS_STRING(zero);
    s.counts = (int32_t *)PyBytes_AS_STRING(counts);
    s.kinds = kinds;
    s.params = params;
    /* as page_changes: only a sample big enough pays for handing the GIL over */
    PyThreadState *released = s.n * page_size >= (1 << 18) ? PyEval_SaveThread() : NULL;
    run_scan(&s);
    if (released != NULL)
        PyEval_RestoreThread(released);
    result = scan_result(&s, zero, counts);
    counts = NULL; /* scan_result took it (resized, or freed on failure) */
done:
    Py_XDECREF(zero);
    Py_XDECREF(counts);
    PyBuffer_Release(&new_view);
    if (old_view.buf != NULL)
        PyBuffer_Release(&old_view);
    if (rows_view.buf != NULL)
        PyBuffer_Release(&rows_view);
    if (held_view.buf != NULL)
        PyBuffer_Release(&held_view);
    return result;
}

static PyMethodDef methods[] = {
    {"zero_pages", zero_pages, METH_VARARGS,
     "zero_pages(buffer, page_size) -> bytes | None: 1 per all-zero page, None if none."},
    {"page_changes", page_changes, METH_VARARGS,
     "page_changes(new, old, page_size[, rows]) -> bytes: int32 changed words, differing "
     "bytes, runs of changed words and runs of differing bytes per page (per row of rows)."},
    {"estimate_sums", estimate_sums, METH_VARARGS,
     "estimate_sums(counts, page_size, formulas) -> tuple: per (kind, param) formula, its "
     "delta estimate summed over the pages of counts (page_changes' layout)."},
    {"sample_scan", sample_scan, METH_VARARGS,
     "sample_scan(pages, old | None, page_size, rows | None, held | None, stride, formulas) "
     "-> (zero | None, nonzero, counts | None, kept, words, runs, words_sq, words_runs, sums, "
     "entropy)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.codecs._pagescan",
    "Page scans over a whole batch in one call (see zero.py and changes.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__pagescan(void) { return PyModule_Create(&module); }
