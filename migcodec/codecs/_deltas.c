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
 * xbzrle_encode(old, new, page_size) -> (results, status, lengths, data)
 *   Per page QEMU's xbzrle_encode_buffer(old, new, page_size, dst, page_size) result as
 *   int32 (-1 overflow, 0 unchanged, else the length), a status byte (0 unchanged, 1 delta,
 *   2 raw: the STATUS_* values of delta.py), the u16 lengths of the delta pages and their
 *   encodings concatenated.
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
 * dsa_deltas(old, new, page_size, cap) -> (status, counts, records)
 *   What the dsa-delta codec sends: status bytes as above (a page with more than cap
 *   changed words goes raw), the u16 entry count of each delta page and their records.
 *   dsa_create and dsa_deltas run the same pass (dsa_pass).
 *
 * record_frame(format, store, new, page_size, cap, copy_raw[, find_zero])
 *     -> (modes, segments, payload_nbytes, n_zero)
 *   A delta codec's whole frame when the destination holds every page, in one call: format
 *   0 is XBZRLE, 1 DSA (cap: its entry cap, as for dsa_deltas). store holds the versions
 *   the destination holds (the mirror's own rows, writable), and each of its pages is
 *   replaced by the new one right after the two are compared: the mirror records what the
 *   destination will hold in the pass that reads it, while both pages are in cache, rather
 *   than in a second pass over the batch. The frame is laid out here as the framework lays
 *   out a transform's result (base.py, Codec._lay_out), byte for byte, so the caller only
 *   wraps it: modes are those of delta.py (1 raw, 2 delta, 4 unchanged), as a bytearray,
 *   or as one int when every page has that mode (the caller then shares a read-only
 *   table instead of making an array per batch); segments are the payload's parts, raw
 *   pages first (copied from new when copy_raw says new may change, or when they are
 *   gathered), then the blob (u32 0: no fall-back part; the u16 length of each delta
 *   page; the deltas), or None when the payload is every page of new as it is (every page
 *   raw and no copy asked for: the caller sends new itself). Deltas that do not make the
 *   blob smaller than the pages they cover send every non-zero page raw. With find_zero,
 *   a page whose new version is all zero is found in the same pass (its mode 0, the
 *   framework's zero page, no payload; its store row holds the zeros) and n_zero counts
 *   them: the framework's own zero-page scan would read every page of the batch once
 *   more, before the kernel, where it is not in cache. Without it n_zero is 0. The bytes
 *   are those of the entry points above. store and new must not overlap, unless they are
 *   the same buffer.
 *
 * held_run(keys, indices, n, n_slots) -> first slot, or -1
 *   For DestinationMirror.lend_rows: the slot of indices[0] when the n int64 indices are
 *   the keys of n consecutive slots from there (keys: the mirror's n_slots int64 keys),
 *   else -1. One call instead of a few numpy and bytes calls, each of which costs as much
 *   as this once a delta kernel has left the caches cold.
 *
 * dsa_apply(pages, records, sizes, page_size) -> None | (code, value)
 *   Apply Delta Record per page (sizes: int64 bytes, one per page), strictly: every size a
 *   whole number of entries, the sizes filling the records, offsets inside the page and
 *   ascending within it. All of it is checked before the first write.
 */

/* Both formats are little-endian and the kernels read and write them as native words. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the delta kernels assume a little-endian host; build without them (numpy path)"
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_page_words.h"

#define STATUS_UNCHANGED 0
#define STATUS_DELTA 1
#define STATUS_RAW 2
/* record_frame with find_zero only: the new page is all zero (the framework's zero page) */
#define STATUS_ZERO 3

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
    uint64_t x = (load_word(a + w) ^ load_word(b + w)) & (~0ULL << (8 * (i - w)));
    while (!x) {
        w += 8;
        if (w >= n)
            return n;
        x = load_word(a + w) ^ load_word(b + w);
    }
    return w + (__builtin_ctzll(x) >> 3);
}

/* First offset >= i (up to n) where the pages are equal. */
static inline Py_ssize_t skip_diff(const unsigned char *a, const unsigned char *b, Py_ssize_t i,
                                   Py_ssize_t n)
{
    Py_ssize_t w = i & ~(Py_ssize_t)7;
    /* bytes before i count as differing: set them non-zero */
    uint64_t z = zero_bytes((load_word(a + w) ^ load_word(b + w)) | ~(~0ULL << (8 * (i - w))));
    while (!z) {
        w += 8;
        if (w >= n)
            return n;
        z = zero_bytes(load_word(a + w) ^ load_word(b + w));
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

/* Copy new's bytes start..start+n-1 over old's (upd), changing no other byte of upd: runs
 * of changed bytes are short where changes are sparse, so they go as whole 8-byte stores
 * and a masked read-modify-write for the last bytes, not a memcpy call each. */
static inline void update_run(unsigned char *upd, const unsigned char *new_, Py_ssize_t start,
                              Py_ssize_t n, Py_ssize_t slen)
{
    if (n > 32) {
        memcpy(upd + start, new_ + start, (size_t)n);
        return;
    }
    for (; n >= 8; start += 8, n -= 8)
        store64(upd + start, load_word(new_ + start));
    if (!n)
        return;
    if (slen - start >= 8) {
        uint64_t keep = ~0ULL << (8 * n); /* 0 < n < 8 */
        store64(upd + start, (load_word(new_ + start) & ~keep) | (load_word(upd + start) & keep));
    } else {
        memcpy(upd + start, new_ + start, (size_t)n);
    }
}

/* QEMU's xbzrle_encode_buffer(old, new, slen, dst, slen) for one page, with its checks in
 * its order: before every run header two free bytes (also before a trailing zero run, which
 * is not written), and a change run's bytes only if they fit. dst has slen + SLACK bytes.
 *
 * With upd (old itself, writable) the page is updated to new in the same walk: each change
 * run is copied over old once found (old is read only past it afterwards), and on overflow
 * the rest of the page from the last copied run; bytes of zero runs are equal already.
 * Inlined with upd a constant NULL, the plain encoder carries no trace of it. */
static inline __attribute__((always_inline)) int
xbzrle_page(const unsigned char *old, const unsigned char *new_, Py_ssize_t slen,
            unsigned char *dst, unsigned char *upd)
{
    Py_ssize_t d = 0, i = 0, dlen = slen, done = 0; /* with upd: old == new before done */
    while (i < slen) {
        if (d + 2 > dlen)
            goto overflow;
        Py_ssize_t zero_start = i;
        i = skip_equal(old, new_, i, slen);
        if (i == slen)
            return zero_start == 0 ? 0 : (int)d;
        d += uleb_small(dst + d, (uint32_t)(i - zero_start));
        if (d + 2 > dlen)
            goto overflow;
        Py_ssize_t start = i;
        i = skip_diff(old, new_, i, slen);
        Py_ssize_t n = i - start;
        if (upd) {
            update_run(upd, new_, start, n, slen);
            done = i;
        }
        d += uleb_small(dst + d, (uint32_t)n);
        if (d + n > dlen)
            goto overflow;
        copy_literal(dst + d, new_ + start, n, slen - start);
        d += n;
    }
    return (int)d;
overflow:
    if (upd)
        memcpy(upd + done, new_ + done, (size_t)(slen - done));
    return -1;
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

/* What one encode pass writes. status, data and used are always there; the others may be
 * NULL. */
typedef struct {
    unsigned char *status; /* per page: STATUS_* (for DSA also DML's result byte) */
    int32_t *results;      /* XBZRLE: per page QEMU's result */
    int64_t *sizes;        /* DSA: per page its record's size in bytes */
    uint16_t *lengths;     /* per delta page: its u16 length field (bytes; DSA: entries) */
    unsigned char *data;   /* the deltas kept, concatenated (with SLACK bytes of room) */
    unsigned char *update; /* the old pages, writable: each is updated to new as it is read */
    unsigned char *raw;    /* where the new versions of raw pages are copied, in order */
    Py_ssize_t n_raw;      /* raw pages copied */
    int find_zero;         /* all-zero new pages get STATUS_ZERO and no payload */
    Py_ssize_t n_zero;     /* pages found all zero */
    Py_ssize_t used;       /* bytes of data written */
    Py_ssize_t k;          /* entries of lengths written */
} pass_out;

/* With find_zero, a zero new page: its status, and nothing of it kept (its encoding, not
 * yet counted in used, is dropped; with update its store row holds new's zeros already). */
static inline int zero_page_found(pass_out *o, Py_ssize_t p, const unsigned char *new_,
                                  Py_ssize_t page_size)
{
    if (!o->find_zero || !page_is_zero(new_, page_size))
        return 0;
    o->status[p] = STATUS_ZERO;
    o->n_zero++;
    return 1;
}

/* The XBZRLE pass, without the GIL: each page encoded, its status, length and encoding. */
static void xbzrle_pass(const unsigned char *a, const unsigned char *b, Py_ssize_t m,
                        Py_ssize_t page_size, pass_out *o)
{
    for (Py_ssize_t p = 0; p < m; p++) {
        const unsigned char *new_ = b + p * page_size;
        unsigned char *dst = o->data + o->used;
        int r = o->update ? xbzrle_page(a + p * page_size, new_, page_size, dst,
                                        o->update + p * page_size)
                          : xbzrle_page(a + p * page_size, new_, page_size, dst, NULL);
        if (o->results)
            o->results[p] = r;
        if (zero_page_found(o, p, new_, page_size))
            continue;
        if (r > 0) {
            o->status[p] = STATUS_DELTA;
            o->lengths[o->k++] = (uint16_t)r; /* native order: little-endian where built */
            o->used += r;
        } else {
            o->status[p] = r == 0 ? STATUS_UNCHANGED : STATUS_RAW;
            if (r < 0 && o->raw) /* while the page is in cache */
                memcpy(o->raw + page_size * o->n_raw++, new_, (size_t)page_size);
        }
    }
}

static PyObject *xbzrle_encode(PyObject *self, PyObject *args)
{
    Py_buffer old_view, new_view;
    Py_ssize_t page_size;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*n", &old_view, &new_view, &page_size))
        return NULL;
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
    pass_out o = {.status = (unsigned char *)PyBytes_AS_STRING(status),
                  .results = (int32_t *)PyBytes_AS_STRING(results),
                  .lengths = (uint16_t *)PyBytes_AS_STRING(lengths),
                  .data = (unsigned char *)PyBytes_AS_STRING(data)};
    Py_BEGIN_ALLOW_THREADS
    xbzrle_pass(old_view.buf, new_view.buf, m, page_size, &o);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&lengths, o.k * (Py_ssize_t)sizeof(uint16_t)) < 0 ||
        _PyBytes_Resize(&data, o.used) < 0)
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

/* One page, QEMU's xbzrle_decode_buffer checks in its order. With page NULL it only
 * checks (a first pass over a batch, so that a malformed page leaves every page as it was);
 * inlined with page a constant NULL, the check carries no trace of the writes. */
static inline __attribute__((always_inline)) int
xbzrle_decode_page(const unsigned char *src, Py_ssize_t slen, unsigned char *page,
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
        if (!page) {
            /* checking only */
        } else if (count <= 8 && slen - i >= 8 && page_size - d >= 8) {
            /* short runs dominate sparse changes: an 8-byte read-modify-write keeps the
             * bytes of the page past the run as they are */
            uint64_t keep = count == 8 ? 0 : ~0ULL << (8 * count);
            uint64_t v = (load_word(src + i) & ~keep) | (load_word(page + d) & keep);
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
        /* every page checked before the first write, then written (which cannot fail) */
        for (Py_ssize_t p = 0; p < m; p++) {
            int r = xbzrle_decode_page(src, lengths[p], NULL, page_size);
            if (r != XD_OK) {
                code = r, where = p;
                break;
            }
            src += lengths[p];
        }
        if (code == XD_OK) {
            src = data_view.buf;
            for (Py_ssize_t p = 0; p < m; p++) {
                xbzrle_decode_page(src, lengths[p], dst + p * page_size, page_size);
                src += lengths[p];
            }
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
 * the output advances only for a changed word).
 *
 * With upd (old itself, writable) the page is updated to new in the same walk: a block of
 * four words with a change is copied over old once its entries are written (old is read
 * only past it afterwards), and on overflow the rest of the page; unchanged blocks are
 * equal already. Inlined with upd a constant NULL, the plain kernel carries no trace of it. */
static inline __attribute__((always_inline)) Py_ssize_t
dsa_page(const unsigned char *old, const unsigned char *new_, Py_ssize_t words, Py_ssize_t cap,
         unsigned char *out, unsigned char *upd)
{
    Py_ssize_t count = 0, w = 0;
    for (; w + 4 <= words; w += 4) {
        const unsigned char *a = old + 8 * w, *b = new_ + 8 * w;
        uint64_t x0 = load_word(a) ^ load_word(b), x1 = load_word(a + 8) ^ load_word(b + 8);
        uint64_t x2 = load_word(a + 16) ^ load_word(b + 16), x3 = load_word(a + 24) ^ load_word(b + 24);
        if (!(x0 | x1 | x2 | x3))
            continue;
        uint64_t xs[4] = {x0, x1, x2, x3};
        if (count + 4 > cap) {
            /* near the maximum: word by word, so the overflow is found where DML finds it */
            for (int j = 0; j < 4; j++) {
                if (xs[j]) {
                    if (count == cap)
                        goto overflow;
                    uint16_t off = (uint16_t)(w + j);
                    memcpy(out + DSA_ENTRY * count, &off, 2);
                    memcpy(out + DSA_ENTRY * count + 2, b + 8 * j, 8);
                    count++;
                }
            }
        } else {
            for (int j = 0; j < 4; j++) {
                unsigned char *e = out + DSA_ENTRY * count;
                uint16_t off = (uint16_t)(w + j);
                memcpy(e, &off, 2);
                memcpy(e + 2, b + 8 * j, 8);
                count += xs[j] != 0;
            }
        }
        if (upd)
            memcpy(upd + 8 * w, b, 32);
    }
    for (; w < words; w++) {
        if (load_word(old + 8 * w) != load_word(new_ + 8 * w)) {
            if (count == cap)
                goto overflow;
            uint16_t off = (uint16_t)w;
            memcpy(out + DSA_ENTRY * count, &off, 2);
            memcpy(out + DSA_ENTRY * count + 2, new_ + 8 * w, 8);
            count++;
            if (upd)
                memcpy(upd + 8 * w, new_ + 8 * w, 8);
        }
    }
    return count;
overflow: /* words before w are new already */
    if (upd)
        memcpy(upd + 8 * w, new_ + 8 * w, (size_t)(8 * (words - w)));
    return cap + 1;
}

/* The DSA pass, without the GIL: per page, Create Delta Record with room for cap entries,
 * its result byte, and its entries kept (all of them when the record fits; of an
 * overflowing page the first cap with partial, else none). */
static void dsa_pass(const unsigned char *a, const unsigned char *b, Py_ssize_t m,
                     Py_ssize_t page_size, Py_ssize_t cap, int partial, pass_out *o)
{
    Py_ssize_t words = page_size / 8;
    for (Py_ssize_t p = 0; p < m; p++) {
        const unsigned char *old = a + p * page_size, *new_ = b + p * page_size;
        unsigned char *out = o->data + o->used;
        Py_ssize_t n = o->update
                           ? dsa_page(old, new_, words, cap, out, o->update + p * page_size)
                           : dsa_page(old, new_, words, cap, out, NULL);
        if (zero_page_found(o, p, new_, page_size)) {
            if (o->sizes)
                o->sizes[p] = 0;
            continue;
        }
        if (n > cap) {
            o->status[p] = DSA_OVERFLOW;
            n = partial ? cap : 0;
            if (o->raw) /* while the page is in cache */
                memcpy(o->raw + page_size * o->n_raw++, new_, (size_t)page_size);
        } else {
            o->status[p] = n ? DSA_NOT_EQUAL : DSA_EQUAL;
            if (n && o->lengths)
                o->lengths[o->k++] = (uint16_t)n; /* cap <= 0xFFFF: the caller checked */
        }
        if (o->sizes)
            o->sizes[p] = (int64_t)n * DSA_ENTRY;
        o->used += n * DSA_ENTRY;
    }
}

/* The most entries a DSA pass may keep per page: cap checked, and room for the records. */
static int dsa_room(Py_ssize_t cap, Py_ssize_t page_size, int codec, const char *what,
                    Py_ssize_t *room)
{
    if (cap < 0 || (codec && cap > 0xFFFF)) {
        PyErr_Format(PyExc_ValueError, "%s needs room for %s entries", what,
                     codec ? "0..65535" : "0 or more");
        return -1;
    }
    Py_ssize_t words = page_size / 8;
    *room = cap < words ? cap : words;
    return 0;
}

/* dsa_create and dsa_deltas: one pass, and the outputs each returns. */
static PyObject *dsa_entry(PyObject *args, int codec, const char *what)
{
    Py_buffer old_view, new_view;
    Py_ssize_t page_size, cap, room;
    int partial = 0;
    if (!PyArg_ParseTuple(args, codec ? "y*y*nn" : "y*y*nnp", &old_view, &new_view, &page_size,
                          &cap, &partial))
        return NULL;
    PyObject *status = NULL, *per_page = NULL, *records = NULL, *out = NULL;
    if (check_pair(&old_view, &new_view, page_size, 0, what) < 0 ||
        dsa_room(cap, page_size, codec, what, &room) < 0)
        goto done;
    Py_ssize_t m = old_view.len / page_size;
    status = PyBytes_FromStringAndSize(NULL, m);
    per_page = PyBytes_FromStringAndSize(
        NULL, m * (Py_ssize_t)(codec ? sizeof(uint16_t) : sizeof(int64_t)));
    records = PyBytes_FromStringAndSize(NULL, m * room * DSA_ENTRY + SLACK);
    if (!status || !per_page || !records)
        goto done;
    pass_out o = {.status = (unsigned char *)PyBytes_AS_STRING(status),
                  .data = (unsigned char *)PyBytes_AS_STRING(records)};
    if (codec)
        o.lengths = (uint16_t *)PyBytes_AS_STRING(per_page);
    else
        o.sizes = (int64_t *)PyBytes_AS_STRING(per_page);
    Py_BEGIN_ALLOW_THREADS
    dsa_pass(old_view.buf, new_view.buf, m, page_size, cap, partial, &o);
    Py_END_ALLOW_THREADS
    if ((codec && _PyBytes_Resize(&per_page, o.k * (Py_ssize_t)sizeof(uint16_t)) < 0) ||
        _PyBytes_Resize(&records, o.used) < 0)
        goto done;
    out = PyTuple_Pack(3, status, per_page, records);
done:
    Py_XDECREF(status);
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

/* -- A delta codec's frame, recorded as it is made ---------------------------------------- */

/* the page modes of delta.py: zero (PageMode.ZERO), raw (PageMode.RAW), delta
 * (PageMode.ENCODED), unchanged */
#define MODE_ZERO 0
#define MODE_RAW 1
#define MODE_DELTA 2
#define MODE_UNCHANGED 4
enum { FORMAT_XBZRLE = 0, FORMAT_DSA = 1 };

/* The raw pages of new that a frame sends, gathered in page order: those whose mode is
 * MODE_RAW (n_raw of them), into a new bytes object. */
static PyObject *gather_raw(const unsigned char *md, const unsigned char *nw, Py_ssize_t m,
                            Py_ssize_t page_size, Py_ssize_t n_raw)
{
    PyObject *raw = PyBytes_FromStringAndSize(NULL, n_raw * page_size);
    if (!raw)
        return NULL;
    unsigned char *r = (unsigned char *)PyBytes_AS_STRING(raw);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < m; p++) {
        if (md[p] == MODE_RAW) {
            memcpy(r, nw + p * page_size, (size_t)page_size);
            r += page_size;
        }
    }
    Py_END_ALLOW_THREADS
    return raw;
}

static PyObject *record_frame(PyObject *self, PyObject *args)
{
    Py_buffer store_view, new_view;
    Py_ssize_t page_size, cap, room = 0;
    int format, copy_raw, find_zero = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "iw*y*nnp|p", &format, &store_view, &new_view, &page_size, &cap,
                          &copy_raw, &find_zero))
        return NULL;
    PyObject *modes = NULL, *head = NULL, *data = NULL, *raw = NULL, *segments = NULL;
    PyObject *out = NULL;
    unsigned char *st = store_view.buf;
    const unsigned char *nw = new_view.buf;
    int dsa = format == FORMAT_DSA;
    if (format != FORMAT_XBZRLE && !dsa) {
        PyErr_Format(PyExc_ValueError, "record_frame: no delta format %d", format);
        goto done;
    }
    if (check_pair(&store_view, &new_view, page_size, dsa ? 0 : XBZRLE_MAX_PAGE,
                   "record_frame") < 0 ||
        (dsa && dsa_room(cap, page_size, 1, "record_frame", &room) < 0))
        goto done;
    if (st != nw && (const unsigned char *)st < nw + new_view.len &&
        nw < st + store_view.len) {
        PyErr_SetString(PyExc_ValueError,
                        "record_frame: the store and the new pages overlap (and are not one)");
        goto done;
    }
    Py_ssize_t m = store_view.len / page_size, n_raw = 0;
    modes = PyByteArray_FromStringAndSize(NULL, m);
    head = PyBytes_FromStringAndSize(NULL, 4 + m * (Py_ssize_t)sizeof(uint16_t));
    data = PyBytes_FromStringAndSize(NULL, (dsa ? m * room * DSA_ENTRY : m * page_size) + SLACK);
    /* with copy_raw room for every page: raw pages are copied in the pass (else after it) */
    raw = PyBytes_FromStringAndSize(NULL, copy_raw ? m * page_size : 0);
    if (!modes || !head || !data || !raw)
        goto done;
    unsigned char *md = (unsigned char *)PyByteArray_AS_STRING(modes);
    unsigned char *hd = (unsigned char *)PyBytes_AS_STRING(head);
    memset(hd, 0, 4); /* u32 fall-back size: no page falls back in a recorded frame */
    pass_out o = {.status = md,
                  .lengths = (uint16_t *)(hd + 4),
                  .data = (unsigned char *)PyBytes_AS_STRING(data),
                  .update = st == nw ? NULL : st,
                  .raw = copy_raw ? (unsigned char *)PyBytes_AS_STRING(raw) : NULL,
                  .find_zero = find_zero};
    Py_BEGIN_ALLOW_THREADS
    if (dsa)
        dsa_pass(st, nw, m, page_size, cap, 0, &o);
    else
        xbzrle_pass(st, nw, m, page_size, &o);
    for (Py_ssize_t p = 0; p < m; p++) { /* status -> mode, in place */
        unsigned char s_ = md[p];
        md[p] = s_ == STATUS_DELTA ? MODE_DELTA
                : s_ == STATUS_RAW ? MODE_RAW
                : s_ == STATUS_ZERO ? MODE_ZERO
                                    : MODE_UNCHANGED;
        n_raw += s_ == STATUS_RAW;
    }
    Py_END_ALLOW_THREADS
    Py_ssize_t n_encoded = m - n_raw - o.n_zero;
    Py_ssize_t blob_nbytes = 4 + o.k * (Py_ssize_t)sizeof(uint16_t) + o.used;
    if (n_encoded && blob_nbytes >= n_encoded * page_size) {
        /* the deltas do not pay: every non-zero page goes raw, the raw pages copied in the
         * pass dropped, as Codec._lay_out drops an encoding that is not smaller */
        for (Py_ssize_t p = 0; p < m; p++)
            md[p] = md[p] == MODE_ZERO ? MODE_ZERO : MODE_RAW;
        n_raw = m - o.n_zero;
        n_encoded = 0;
        Py_CLEAR(raw);
        if (copy_raw || o.n_zero) { /* else every page raw, not copied: the caller sends new */
            raw = gather_raw(md, nw, m, page_size, n_raw);
            if (!raw)
                goto done;
        }
    } else if (copy_raw) {
        if (_PyBytes_Resize(&raw, n_raw * page_size) < 0)
            goto done;
    } else {
        Py_CLEAR(raw);
        if (n_raw && n_raw < m) { /* a mixed frame's raw pages (all raw: the caller sends new) */
            raw = gather_raw(md, nw, m, page_size, n_raw);
            if (!raw)
                goto done;
        }
    }
    Py_ssize_t payload_nbytes = n_raw * page_size;
    if (!n_encoded) {
        if (!n_raw)
            segments = PyTuple_New(0);
        else
            segments = raw ? PyTuple_Pack(1, raw) : Py_NewRef(Py_None);
    } else {
        if (_PyBytes_Resize(&head, 4 + o.k * (Py_ssize_t)sizeof(uint16_t)) < 0 ||
            _PyBytes_Resize(&data, o.used) < 0)
            goto done;
        payload_nbytes += blob_nbytes;
        if (n_raw)
            segments = o.used ? PyTuple_Pack(3, raw, head, data) : PyTuple_Pack(2, raw, head);
        else
            segments = o.used ? PyTuple_Pack(2, head, data) : PyTuple_Pack(1, head);
    }
    if (!segments)
        goto done;
    Py_ssize_t same = 1;
    for (Py_ssize_t p = 1; p < m && same; p++)
        same = md[p] == md[0];
    if (m && same)
        out = Py_BuildValue("(iOnn)", (int)md[0], segments, payload_nbytes, o.n_zero);
    else
        out = Py_BuildValue("(OOnn)", modes, segments, payload_nbytes, o.n_zero);
done:
    Py_XDECREF(modes);
    Py_XDECREF(head);
    Py_XDECREF(data);
    Py_XDECREF(raw);
    Py_XDECREF(segments);
    PyBuffer_Release(&store_view);
    PyBuffer_Release(&new_view);
    return out;
}

/* -- The mirror's look-up of a batch held in consecutive slots ------------------------------ */

static PyObject *held_run(PyObject *self, PyObject *args)
{
    Py_buffer keys, idx;
    Py_ssize_t n, n_slots, start = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nn", &keys, &idx, &n, &n_slots))
        return NULL;
    if (n > 0 && n_slots > 0 && idx.len == 8 * n && keys.len == 8 * n_slots) {
        int64_t first;
        memcpy(&first, idx.buf, 8);
        if (first >= 0) {
            Py_ssize_t s_ = (Py_ssize_t)(first % n_slots);
            if (s_ <= n_slots - n &&
                !memcmp((const char *)keys.buf + 8 * s_, idx.buf, (size_t)(8 * n)))
                start = s_;
        }
    }
    PyBuffer_Release(&keys);
    PyBuffer_Release(&idx);
    return PyLong_FromSsize_t(start);
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
     "xbzrle_encode(old, new, page_size) -> (results, status, lengths, data)"},
    {"xbzrle_decode", xbzrle_decode, METH_VARARGS,
     "xbzrle_decode(pages, data, lengths, page_size) -> None | (code, page, a, b)"},
    {"dsa_create", dsa_create, METH_VARARGS,
     "dsa_create(old, new, page_size, cap, partial) -> (results, sizes, records)"},
    {"dsa_deltas", dsa_deltas, METH_VARARGS,
     "dsa_deltas(old, new, page_size, cap) -> (status, counts, records)"},
    {"record_frame", record_frame, METH_VARARGS,
     "record_frame(format, store, new, page_size, cap, copy_raw[, find_zero]) -> (modes, "
     "segments, payload_nbytes, n_zero)"},
    {"held_run", held_run, METH_VARARGS,
     "held_run(keys, indices, n, n_slots) -> first slot of n consecutive slots keyed by "
     "indices, or -1"},
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
