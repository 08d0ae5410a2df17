/*
 * Delta kernels over a whole batch in one call: QEMU's XBZRLE and Intel DSA's delta records.
 *
 * Why C: both formats are a walk along each page (XBZRLE's runs are a chain, every header
 * placed after the previous run), which numpy can only do with index arrays a few times the
 * size of the batch. Here each page is one pass at memory speed, and the page loops run
 * without the GIL so the engines of a stream encode and decode in parallel.
 *
 * The formats are those of plugins/xbzrle.py and plugins/dsa_delta.py, which keep the numpy
 * versions (the fall-back without a C compiler) and say what every byte means; the golden
 * vectors in tests/codecs/vectors check both paths against QEMU's and DML's own output.
 *
 * xbzrle_encode(old, new, page_size, update=False) -> (results, status, lengths, data)
 *   Per page QEMU's xbzrle_encode_buffer(old, new, page_size, dst, page_size) result as
 *   int32 (-1 overflow, 0 unchanged, else the length), a status byte (0 unchanged, 1 delta,
 *   2 raw: the STATUS_* values of delta.py), the u16 lengths of the delta pages and their
 *   encodings concatenated. With update, old must be writable and each of its pages is
 *   replaced by the new page once compared (see "Updating old" below).
 *
 * xbzrle_decode(pages, data, lengths, page_size) -> None | (code, page, a, b)
 *   Applies the encodings (lengths: int64, one per page) to the writable pages in place,
 *   checked as QEMU's xbzrle_decode_buffer and ram_load check them. On malformed input it
 *   returns a code saying which check failed, the page (in the batch) and up to two numbers
 *   for the message, which xbzrle.py words exactly as the numpy path does. Pages before the
 *   failing one, and the failing page up to its bad run, have then been written; nothing is
 *   ever written outside a page.
 *
 * dsa_create(old, new, page_size, cap, partial) -> (results, sizes, records)
 *   DML's Create Delta Record per page with room for cap entries: result byte (0 equal,
 *   1 not equal, 2 overflow), record size in bytes as int64, records concatenated; with
 *   partial false the entries of overflowing pages are left out (their size is 0).
 *
 * dsa_deltas(old, new, page_size, cap, update=False) -> (status, counts, records)
 *   What the dsa-delta codec sends: status bytes as above (a page with more than cap
 *   changed words goes raw), the u16 entry count of each delta page and their records.
 *   update as for xbzrle_encode. Both DSA entry points run the same pass (dsa_pass).
 *
 * Updating old: a delta codec encodes against the stream's mirror of the destination and
 * then records the new pages there, which the destination will hold once the frame is
 * decoded. When the held versions are the mirror's own rows, copying each new page over
 * its old one right after the page is compared does that recording in the same pass, while
 * both pages are in cache, instead of a second pass over the batch. The result bytes are
 * the same either way; old and new must not overlap unless they are the same buffer.
 *
 * dsa_apply(pages, records, sizes, page_size) -> None | (code, value)
 *   Apply Delta Record per page (sizes: int64 bytes, one per page), strictly: every size a
 *   whole number of entries, the sizes filling the records, offsets inside the page and
 *   ascending within it. All of it is checked before the first write.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define STATUS_UNCHANGED 0
#define STATUS_DELTA 1
#define STATUS_RAW 2

/* DML's result bytes; a dsa-delta page's status is the same number (equal: unchanged,
 * not equal: delta, overflow: raw) */
#define DSA_EQUAL STATUS_UNCHANGED
#define DSA_NOT_EQUAL STATUS_DELTA
#define DSA_OVERFLOW STATUS_RAW
#define DSA_ENTRY 10

/* room past the last output byte: the encoders write small literals and entries as whole
 * 8- or 16-byte stores and then advance by the bytes that count */
#define SLACK 32

/* uleb128_encode_small takes 14-bit numbers, so XBZRLE describes pages up to this size */
#define XBZRLE_MAX_PAGE 0x4000

static const uint64_t LOW7 = 0x7F7F7F7F7F7F7F7FULL;
static const uint64_t HIGH = 0x8080808080808080ULL;

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* alignment-safe; one load */
    return v;
}

static inline void store64(unsigned char *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* The high bit of every zero byte of x, exactly (no borrow between bytes). */
static inline uint64_t zero_bytes(uint64_t x) { return ~(((x & LOW7) + LOW7) | x) & HIGH; }

/* -- XBZRLE encode ------------------------------------------------------------------------ */

/* First offset >= i (up to n) where the pages differ. Whole aligned words are compared; the
 * bytes of the first word before i are masked out. */
static inline Py_ssize_t skip_equal(const unsigned char *a, const unsigned char *b, Py_ssize_t i,
                                    Py_ssize_t n)
{
    Py_ssize_t w = i & ~(Py_ssize_t)7;
    uint64_t x = (load64(a + w) ^ load64(b + w)) & (~0ULL << (8 * (i - w)));
    while (!x) {
        w += 8;
        if (w >= n)
            return n;
        x = load64(a + w) ^ load64(b + w);
    }
    return w + (__builtin_ctzll(x) >> 3);
}

/* First offset >= i (up to n) where the pages are equal. */
static inline Py_ssize_t skip_diff(const unsigned char *a, const unsigned char *b, Py_ssize_t i,
                                   Py_ssize_t n)
{
    Py_ssize_t w = i & ~(Py_ssize_t)7;
    /* bytes before i count as differing: set them non-zero */
    uint64_t z = zero_bytes((load64(a + w) ^ load64(b + w)) | ~(~0ULL << (8 * (i - w))));
    while (!z) {
        w += 8;
        if (w >= n)
            return n;
        z = zero_bytes(load64(a + w) ^ load64(b + w));
    }
    return w + (__builtin_ctzll(z) >> 3);
}

static inline int uleb_small(unsigned char *out, uint32_t v)
{
    if (v < 0x80) {
        out[0] = (unsigned char)v;
        return 1;
    }
    out[0] = (unsigned char)((v & 0x7F) | 0x80);
    out[1] = (unsigned char)(v >> 7);
    return 2;
}

/* Copy n bytes; dst has SLACK bytes of room past dst + n (a scratch output), src is read
 * only inside [src, src + n) unless src_room says how far it may be read past that. */
static inline void copy_literal(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                                Py_ssize_t src_room)
{
    if (n <= 16 && src_room >= 16) {
        memcpy(dst, src, 16);
        return;
    }
    memcpy(dst, src, (size_t)n);
}

/* QEMU's xbzrle_encode_buffer(old, new, slen, dst, slen) for one page, with its checks in
 * its order: before every run header two free bytes (also before a trailing zero run, which
 * is not written), and a change run's bytes only if they fit. dst has slen + SLACK bytes. */
static int xbzrle_encode_page(const unsigned char *old, const unsigned char *new_,
                              Py_ssize_t slen, unsigned char *dst)
{
    Py_ssize_t d = 0, i = 0, dlen = slen;
    while (i < slen) {
        if (d + 2 > dlen)
            return -1;
        Py_ssize_t zero_start = i;
        i = skip_equal(old, new_, i, slen);
        if (i == slen)
            return zero_start == 0 ? 0 : (int)d;
        d += uleb_small(dst + d, (uint32_t)(i - zero_start));
        if (d + 2 > dlen)
            return -1;
        Py_ssize_t start = i;
        i = skip_diff(old, new_, i, slen);
        Py_ssize_t n = i - start;
        d += uleb_small(dst + d, (uint32_t)n);
        if (d + n > dlen)
            return -1;
        copy_literal(dst + d, new_ + start, n, slen - start);
        d += n;
    }
    return (int)d;
}

/* Common argument checks: two equal buffers of whole pages of a size that is a positive
 * multiple of 8 and at most max_page (0: any). */
static int check_pair(const Py_buffer *a, const Py_buffer *b, Py_ssize_t page_size,
                      Py_ssize_t max_page, const char *what)
{
    if (page_size <= 0 || page_size % 8 || (max_page && page_size > max_page) ||
        a->len % page_size || a->len != b->len) {
        PyErr_Format(PyExc_ValueError,
                     "%s needs two buffers of equal length (%zd and %zd bytes) of whole pages, "
                     "and a page size (%zd) that is a positive multiple of 8%s",
                     what, a->len, b->len, page_size,
                     max_page ? " and at most 16384" : "");
        return -1;
    }
    return 0;
}

/* The old pages of an encode: read-only, or with update writable (their pages are then
 * replaced by new, which must not overlap them unless it is them). */
static int get_old(PyObject *obj, Py_buffer *view, int update, const Py_buffer *new_view,
                   const char *what)
{
    if (PyObject_GetBuffer(obj, view, update ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    const char *o = view->buf, *n = new_view->buf;
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s needs contiguous old pages", what);
    } else if (update && o != n && o < n + new_view->len && n < o + view->len) {
        PyErr_Format(PyExc_ValueError, "%s cannot update old pages that overlap the new", what);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

static PyObject *xbzrle_encode(PyObject *self, PyObject *args)
{
    PyObject *old_obj;
    Py_buffer old_view, new_view;
    Py_ssize_t page_size;
    int update = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*n|p", &old_obj, &new_view, &page_size, &update))
        return NULL;
    if (get_old(old_obj, &old_view, update, &new_view, "xbzrle_encode") < 0) {
        PyBuffer_Release(&new_view);
        return NULL;
    }
    PyObject *results = NULL, *status = NULL, *lengths = NULL, *data = NULL, *out = NULL;
    if (check_pair(&old_view, &new_view, page_size, XBZRLE_MAX_PAGE, "xbzrle_encode") < 0)
        goto done;
    Py_ssize_t m = old_view.len / page_size;
    results = PyBytes_FromStringAndSize(NULL, m * (Py_ssize_t)sizeof(int32_t));
    status = PyBytes_FromStringAndSize(NULL, m);
    lengths = PyBytes_FromStringAndSize(NULL, m * (Py_ssize_t)sizeof(uint16_t));
    data = PyBytes_FromStringAndSize(NULL, m * page_size + SLACK);
    if (!results || !status || !lengths || !data)
        goto done;
    int32_t *res = (int32_t *)PyBytes_AS_STRING(results);
    unsigned char *st = (unsigned char *)PyBytes_AS_STRING(status);
    uint16_t *len = (uint16_t *)PyBytes_AS_STRING(lengths);
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(data);
    const unsigned char *a = old_view.buf, *b = new_view.buf;
    unsigned char *store = update && a != b ? old_view.buf : NULL;
    Py_ssize_t used = 0, k = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < m; p++) {
        int r = xbzrle_encode_page(a + p * page_size, b + p * page_size, page_size, dst + used);
        if (store) /* old is replaced by new once compared, while both are in cache */
            memcpy(store + p * page_size, b + p * page_size, (size_t)page_size);
        res[p] = r;
        if (r > 0) {
            st[p] = STATUS_DELTA;
            len[k++] = (uint16_t)r; /* native order: little-endian on the targets built */
            used += r;
        } else {
            st[p] = r == 0 ? STATUS_UNCHANGED : STATUS_RAW;
        }
    }
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&lengths, k * (Py_ssize_t)sizeof(uint16_t)) < 0 ||
        _PyBytes_Resize(&data, used) < 0)
        goto done;
    out = PyTuple_Pack(4, results, status, lengths, data);
done:
    Py_XDECREF(results);
    Py_XDECREF(status);
    Py_XDECREF(lengths);
    Py_XDECREF(data);
    PyBuffer_Release(&old_view);
    PyBuffer_Release(&new_view);
    return out;
}

/* -- XBZRLE decode ------------------------------------------------------------------------ */

/* what xbzrle_decode reports; xbzrle.py words each exactly as the numpy path does */
enum {
    XD_OK = 0,
    XD_LENGTH,         /* page a has an encoding of b bytes, outside 1..page size */
    XD_FILL,           /* the encodings fill a bytes where the lengths say b */
    XD_ZERO_CUT,       /* zero run header is cut off */
    XD_ZERO_LONG,      /* zero run length is longer than 14 bits */
    XD_ZERO_EMPTY,     /* zero run of length 0 after the first */
    XD_ZERO_PAST,      /* zero run goes past the end of the page */
    XD_CHANGE_CUT,     /* change run header is cut off */
    XD_CHANGE_LONG,    /* change run length is longer than 14 bits */
    XD_CHANGE_EMPTY,   /* change run of length 0 */
    XD_CHANGE_PAST,    /* change run goes past the end of the page or the data */
};

/* One page, QEMU's xbzrle_decode_buffer checks in its order. */
static int xbzrle_decode_page(const unsigned char *src, Py_ssize_t slen, unsigned char *page,
                              Py_ssize_t page_size)
{
    Py_ssize_t i = 0, d = 0;
    while (i < slen) {
        if (slen - i < 2)
            return XD_ZERO_CUT;
        uint32_t count = src[i];
        if (count & 0x80) {
            if (src[i + 1] & 0x80)
                return XD_ZERO_LONG;
            count = (count & 0x7F) | ((uint32_t)src[i + 1] << 7);
            i += 2;
        } else {
            i += 1;
        }
        if (d && !count) /* only the first zero run may be empty; d > 0 after any pair */
            return XD_ZERO_EMPTY;
        d += count;
        if (d > page_size)
            return XD_ZERO_PAST;
        if (slen - i < 2)
            return XD_CHANGE_CUT;
        count = src[i];
        if (count & 0x80) {
            if (src[i + 1] & 0x80)
                return XD_CHANGE_LONG;
            count = (count & 0x7F) | ((uint32_t)src[i + 1] << 7);
            i += 2;
        } else {
            i += 1;
        }
        if (!count)
            return XD_CHANGE_EMPTY;
        if (d + (Py_ssize_t)count > page_size || i + (Py_ssize_t)count > slen)
            return XD_CHANGE_PAST;
        if (count <= 8 && slen - i >= 8 && page_size - d >= 8) {
            /* short runs dominate sparse changes: an 8-byte read-modify-write keeps the
             * bytes of the page past the run as they are */
            uint64_t keep = count == 8 ? 0 : ~0ULL << (8 * count);
            uint64_t v = (load64(src + i) & ~keep) | (load64(page + d) & keep);
            store64(page + d, v);
        } else {
            memcpy(page + d, src + i, count);
        }
        d += count;
        i += count;
    }
    return XD_OK;
}

static PyObject *xbzrle_decode(PyObject *self, PyObject *args)
{
    Py_buffer pages_view, data_view, len_view;
    Py_ssize_t page_size;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*y*n", &pages_view, &data_view, &len_view, &page_size))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t m = page_size > 0 ? pages_view.len / page_size : 0;
    if (page_size <= 0 || page_size % 8 || page_size > XBZRLE_MAX_PAGE ||
        pages_view.len % page_size || len_view.len != m * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_Format(PyExc_ValueError,
                     "xbzrle_decode needs whole pages of a size that is a positive multiple "
                     "of 8 and at most 16384 (%zd bytes, page size %zd) and one int64 length "
                     "per page (%zd bytes of lengths)",
                     pages_view.len, page_size, len_view.len);
        goto done;
    }
    const int64_t *lengths = len_view.buf;
    long long code = XD_OK, where = 0, a = 0, b = 0;
    int64_t total = 0;
    for (Py_ssize_t p = 0; p < m; p++) {
        if (lengths[p] <= 0 || lengths[p] > page_size) {
            code = XD_LENGTH, where = p, a = p, b = lengths[p];
            break;
        }
        total += lengths[p];
    }
    if (code == XD_OK && total != data_view.len)
        code = XD_FILL, a = data_view.len, b = total;
    if (code == XD_OK) {
        const unsigned char *src = data_view.buf;
        unsigned char *dst = pages_view.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < m; p++) {
            int r = xbzrle_decode_page(src, lengths[p], dst + p * page_size, page_size);
            if (r != XD_OK) {
                code = r, where = p;
                break;
            }
            src += lengths[p];
        }
        Py_END_ALLOW_THREADS
    }
    if (code == XD_OK) {
        out = Py_None;
        Py_INCREF(out);
    } else {
        out = Py_BuildValue("(iLLL)", (int)code, where, a, b);
    }
done:
    PyBuffer_Release(&pages_view);
    PyBuffer_Release(&data_view);
    PyBuffer_Release(&len_view);
    return out;
}

/* -- DSA delta records -------------------------------------------------------------------- */

/* DML's Create Delta Record for one page with room for cap entries: writes the first
 * min(changed, cap) entries to out (out has SLACK bytes of room past them) and returns the
 * number of changed words, or cap + 1 as soon as there is one more than fits (DML stops
 * there with its overflow result). Four words are tested at a time so unchanged stretches
 * cost one branch; changed words are written without a branch (the entry is always stored,
 * the output advances only for a changed word). */
static Py_ssize_t dsa_create_page(const unsigned char *old, const unsigned char *new_,
                                  Py_ssize_t words, Py_ssize_t cap, unsigned char *out)
{
    Py_ssize_t count = 0, w = 0;
    for (; w + 4 <= words; w += 4) {
        const unsigned char *a = old + 8 * w, *b = new_ + 8 * w;
        uint64_t x0 = load64(a) ^ load64(b), x1 = load64(a + 8) ^ load64(b + 8);
        uint64_t x2 = load64(a + 16) ^ load64(b + 16), x3 = load64(a + 24) ^ load64(b + 24);
        if (!(x0 | x1 | x2 | x3))
            continue;
        if (count + 4 > cap) {
            /* near the maximum: word by word, so the overflow is found where DML finds it */
            for (int j = 0; j < 4; j++) {
                if (load64(a + 8 * j) != load64(b + 8 * j)) {
                    if (count == cap)
                        return cap + 1;
                    uint16_t off = (uint16_t)(w + j);
                    memcpy(out + DSA_ENTRY * count, &off, 2);
                    memcpy(out + DSA_ENTRY * count + 2, b + 8 * j, 8);
                    count++;
                }
            }
            continue;
        }
        uint64_t xs[4] = {x0, x1, x2, x3};
        for (int j = 0; j < 4; j++) {
            unsigned char *e = out + DSA_ENTRY * count;
            uint16_t off = (uint16_t)(w + j);
            memcpy(e, &off, 2);
            memcpy(e + 2, b + 8 * j, 8);
            count += xs[j] != 0;
        }
    }
    for (; w < words; w++) {
        if (load64(old + 8 * w) != load64(new_ + 8 * w)) {
            if (count == cap)
                return cap + 1;
            uint16_t off = (uint16_t)w;
            memcpy(out + DSA_ENTRY * count, &off, 2);
            memcpy(out + DSA_ENTRY * count + 2, new_ + 8 * w, 8);
            count++;
        }
    }
    return count;
}

/* What one DSA pass produces; any of sizes, counts and store may be NULL. */
typedef struct {
    unsigned char *res;  /* per page: DML's result byte (also the STATUS_* value) */
    int64_t *sizes;      /* per page: record size in bytes */
    uint16_t *counts;    /* per page with a kept record: its entry count */
    unsigned char *rec;  /* kept records, concatenated (with SLACK bytes of room) */
    unsigned char *store; /* per page: where new is copied once compared (may be old) */
    Py_ssize_t used;     /* record bytes written */
    Py_ssize_t k;        /* entries of counts written */
} dsa_out;

/* The one DSA pass both entry points run, without the GIL: per page, Create Delta Record
 * with room for cap entries, its result byte, and its entries kept (all of them when the
 * record fits; of an overflowing page the first cap with partial, else none). With a store
 * each page of new is copied there once compared, while both are in cache: the caller
 * records what the destination will hold in the same pass, and store may be old itself
 * (a page is read in full before it is replaced). */
static void dsa_pass(const unsigned char *a, const unsigned char *b, Py_ssize_t m,
                     Py_ssize_t page_size, Py_ssize_t cap, int partial, dsa_out *o)
{
    Py_ssize_t words = page_size / 8;
    for (Py_ssize_t p = 0; p < m; p++) {
        const unsigned char *old = a + p * page_size, *new_ = b + p * page_size;
        Py_ssize_t n = dsa_create_page(old, new_, words, cap, o->rec + o->used);
        if (o->store && o->store + p * page_size != new_)
            memcpy(o->store + p * page_size, new_, (size_t)page_size);
        if (n > cap) {
            o->res[p] = DSA_OVERFLOW;
            n = partial ? cap : 0;
        } else {
            o->res[p] = n ? DSA_NOT_EQUAL : DSA_EQUAL;
            if (n && o->counts)
                o->counts[o->k++] = (uint16_t)n; /* cap <= 0xFFFF: checked by the caller */
        }
        if (o->sizes)
            o->sizes[p] = (int64_t)n * DSA_ENTRY;
        o->used += n * DSA_ENTRY;
    }
}

/* dsa_create and dsa_deltas: the arguments checked and the outputs allocated alike; codec
 * says which outputs (counts and the u16 cap, or per-page sizes). */
static PyObject *dsa_entry(PyObject *args, int codec, const char *what)
{
    PyObject *old_obj;
    Py_buffer old_view, new_view;
    Py_ssize_t page_size, cap;
    int flag = 0; /* dsa_create: partial; dsa_deltas: update */
    if (!PyArg_ParseTuple(args, codec ? "Oy*nn|p" : "Oy*nnp", &old_obj, &new_view, &page_size,
                          &cap, &flag))
        return NULL;
    int update = codec && flag, partial = !codec && flag;
    if (get_old(old_obj, &old_view, update, &new_view, what) < 0) {
        PyBuffer_Release(&new_view);
        return NULL;
    }
    PyObject *res = NULL, *per_page = NULL, *records = NULL, *out = NULL;
    if (check_pair(&old_view, &new_view, page_size, 0, what) < 0)
        goto done;
    if (cap < 0 || (codec && cap > 0xFFFF)) {
        PyErr_Format(PyExc_ValueError, "%s needs room for %s entries", what,
                     codec ? "0..65535" : "0 or more");
        goto done;
    }
    Py_ssize_t m = old_view.len / page_size, words = page_size / 8;
    Py_ssize_t room = cap < words ? cap : words;
    res = PyBytes_FromStringAndSize(NULL, m);
    per_page = PyBytes_FromStringAndSize(
        NULL, m * (Py_ssize_t)(codec ? sizeof(uint16_t) : sizeof(int64_t)));
    records = PyBytes_FromStringAndSize(NULL, m * room * DSA_ENTRY + SLACK);
    if (!res || !per_page || !records)
        goto done;
    dsa_out o = {(unsigned char *)PyBytes_AS_STRING(res), NULL, NULL,
                 (unsigned char *)PyBytes_AS_STRING(records),
                 update ? (unsigned char *)old_view.buf : NULL, 0, 0};
    if (codec)
        o.counts = (uint16_t *)PyBytes_AS_STRING(per_page);
    else
        o.sizes = (int64_t *)PyBytes_AS_STRING(per_page);
    Py_BEGIN_ALLOW_THREADS
    dsa_pass(old_view.buf, new_view.buf, m, page_size, cap, partial, &o);
    Py_END_ALLOW_THREADS
    if ((codec && _PyBytes_Resize(&per_page, o.k * (Py_ssize_t)sizeof(uint16_t)) < 0) ||
        _PyBytes_Resize(&records, o.used) < 0)
        goto done;
    out = PyTuple_Pack(3, res, per_page, records);
done:
    Py_XDECREF(res);
    Py_XDECREF(per_page);
    Py_XDECREF(records);
    PyBuffer_Release(&old_view);
    PyBuffer_Release(&new_view);
    return out;
}

static PyObject *dsa_create(PyObject *self, PyObject *args)
{
    (void)self;
    return dsa_entry(args, 0, "dsa_create");
}

static PyObject *dsa_deltas(PyObject *self, PyObject *args)
{
    (void)self;
    return dsa_entry(args, 1, "dsa_deltas");
}

/* what dsa_apply reports; dsa_delta.py words each exactly as the numpy path does */
enum { DA_OK = 0, DA_SIZES, DA_FILL, DA_OUTSIDE, DA_ORDER };

static PyObject *dsa_apply(PyObject *self, PyObject *args)
{
    Py_buffer pages_view, rec_view, size_view;
    Py_ssize_t page_size;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*y*n", &pages_view, &rec_view, &size_view, &page_size))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t m = page_size > 0 ? pages_view.len / page_size : 0;
    if (page_size <= 0 || page_size % 8 || pages_view.len % page_size ||
        size_view.len != m * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_Format(PyExc_ValueError,
                     "dsa_apply needs whole pages of a size that is a positive multiple of 8 "
                     "(%zd bytes, page size %zd) and one int64 size per page (%zd bytes of "
                     "sizes)",
                     pages_view.len, page_size, size_view.len);
        goto done;
    }
    const int64_t *sizes = size_view.buf;
    const unsigned char *rec = rec_view.buf;
    unsigned char *dst = pages_view.buf;
    Py_ssize_t words = page_size / 8;
    int code = DA_OK;
    long long value = 0;
    int64_t total = 0;
    for (Py_ssize_t p = 0; p < m; p++) {
        if (sizes[p] < 0 || sizes[p] % DSA_ENTRY)
            code = DA_SIZES;
        else
            total += sizes[p];
    }
    if (code == DA_OK && total != rec_view.len)
        code = DA_FILL, value = total;
    if (code == DA_OK) {
        /* every offset checked before the first write: the largest is what an offset
         * outside the page reports, as the numpy path does; then the order in each page */
        uint16_t largest = 0;
        int descends = 0;
        Py_BEGIN_ALLOW_THREADS
        const unsigned char *e = rec;
        for (Py_ssize_t p = 0; p < m; p++) {
            Py_ssize_t n = (Py_ssize_t)(sizes[p] / DSA_ENTRY);
            long prev = -1;
            for (Py_ssize_t j = 0; j < n; j++, e += DSA_ENTRY) {
                uint16_t off;
                memcpy(&off, e, 2);
                largest = off > largest ? off : largest;
                descends |= (long)off <= prev;
                prev = off;
            }
        }
        if (largest < words && !descends) {
            e = rec;
            for (Py_ssize_t p = 0; p < m; p++) {
                unsigned char *page = dst + p * page_size;
                Py_ssize_t n = (Py_ssize_t)(sizes[p] / DSA_ENTRY);
                for (Py_ssize_t j = 0; j < n; j++, e += DSA_ENTRY) {
                    uint16_t off;
                    memcpy(&off, e, 2);
                    memcpy(page + 8 * (Py_ssize_t)off, e + 2, 8);
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (largest >= words)
            code = DA_OUTSIDE, value = largest;
        else if (descends)
            code = DA_ORDER;
    }
    if (code == DA_OK) {
        out = Py_None;
        Py_INCREF(out);
    } else {
        out = Py_BuildValue("(iL)", code, value);
    }
done:
    PyBuffer_Release(&pages_view);
    PyBuffer_Release(&rec_view);
    PyBuffer_Release(&size_view);
    return out;
}

static PyMethodDef methods[] = {
    {"xbzrle_encode", xbzrle_encode, METH_VARARGS,
     "xbzrle_encode(old, new, page_size, update=False) -> (results, status, lengths, data)"},
    {"xbzrle_decode", xbzrle_decode, METH_VARARGS,
     "xbzrle_decode(pages, data, lengths, page_size) -> None | (code, page, a, b)"},
    {"dsa_create", dsa_create, METH_VARARGS,
     "dsa_create(old, new, page_size, cap, partial) -> (results, sizes, records)"},
    {"dsa_deltas", dsa_deltas, METH_VARARGS,
     "dsa_deltas(old, new, page_size, cap, update=False) -> (status, counts, records)"},
    {"dsa_apply", dsa_apply, METH_VARARGS,
     "dsa_apply(pages, records, sizes, page_size) -> None | (code, value)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.codecs._deltas",
    "XBZRLE and DSA delta kernels over a whole batch (see plugins/xbzrle.py, dsa_delta.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__deltas(void) { return PyModule_Create(&module); }
