/*
 * The walk of deflate_scan.py over a raw DEFLATE stream (RFC 1951), in C.
 *
 * Why C: the iaa codec checks every page's stream for matches beyond the device's 4 KiB
 * history when it decodes pages larger than that in software (plugins/iaa.py), and the
 * Python walk takes about 0.3 us per symbol: a 64 KiB page cost 20 ms, an 8 MB frame from
 * a peer 20 s. Here a symbol is a table lookup and a few shifts.
 *
 * scan_deflate(stream, history, max_blocks)
 *     -> (block_types, output_bytes, max_distance, far_match, more_blocks) | (code, a, b)
 *   stream: any C-contiguous buffer. history and max_blocks: -1 for none, else >= 0.
 *   For a valid stream (up to where the walk stops): the block types as bytes, the output
 *   length, the furthest match distance, (output position, distance) of the first match
 *   further back than history or None, and whether max_blocks blocks were walked and the
 *   stream has more. For an invalid one a code saying which check failed (PROBLEM_*) and
 *   up to two numbers for the message, which deflate_scan.py words exactly as the Python
 *   walk does: the two check the same things in the same order, so they refuse the same
 *   streams with the same words.
 *
 * Every read of the stream is bounds-checked (bits past its end read as zeros, as the
 * Python walk reads them, and a position past the end is refused where the Python walk
 * refuses it), and every table index is checked or bounded by construction (noted where).
 * The stream comes from a network peer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* problem codes: _PROBLEMS in deflate_scan.py words them */
enum {
    PROBLEM_NONE = 0,
    PROBLEM_ENDS_IN_BLOCK = 1,
    PROBLEM_ENDS_IN_STORED = 2,
    PROBLEM_STORED_LENGTH = 3,
    PROBLEM_RESERVED_TYPE = 4,
    PROBLEM_UNDEFINED_CODE = 5,
    PROBLEM_NOT_IN_TABLE = 6,
    PROBLEM_OVERSUBSCRIBED_CLEN = 7,
    PROBLEM_OVERSUBSCRIBED_LIT = 8,
    PROBLEM_OVERSUBSCRIBED_DIST = 9,
    PROBLEM_CODE_COUNTS = 10,
    PROBLEM_REPEAT_FIRST = 11,
    PROBLEM_LENGTHS_RUN_PAST = 12,
    PROBLEM_NO_END_OF_BLOCK = 13,
    PROBLEM_BEFORE_START = 14,
    PROBLEM_NO_MEMORY = -1, /* not the stream's fault: MemoryError */
};

enum { STORED = 0, FIXED = 1, DYNAMIC = 2 };

#define MAX_BITS 15
#define FAST_BITS 10 /* every fixed-Huffman code, most dynamic ones */
#define FAST_MASK ((1u << FAST_BITS) - 1)
#define MAX_SYMBOLS 288 /* the fixed literal/length code's */

static const uint16_t LEN_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  13,
                                      15, 17, 19, 23, 27, 31, 35, 43,  51,  59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LEN_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DIST_BASE[30] = {1,    2,    3,    4,    5,    7,     9,     13,
                                       17,   25,   33,   49,   65,   97,    129,   193,
                                       257,  385,  513,  769,  1025, 1537,  2049,  3073,
                                       4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DIST_EXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t CLEN_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                       11, 4,  12, 3, 13, 2, 14, 1, 15};

/* A canonical Huffman code: a table for codes of up to FAST_BITS bits (entry: symbol << 4 |
 * length; 0: a longer code or none), counts and symbols sorted by length for the longer
 * ones, decoded as RFC 1951 3.2.2 assigns them (code_slow). */
struct code {
    uint16_t counts[MAX_BITS + 1];
    uint16_t symbols[MAX_SYMBOLS];
    uint16_t n_symbols;
    uint16_t fast[1u << FAST_BITS];
};

/* Builds c from n lengths (each 0..MAX_BITS, n <= MAX_SYMBOLS: the callers' bounds).
 * Returns 0, or -1 when the code is over-subscribed; an incomplete code is taken, as zlib
 * and the Python walk take it (its missing codes are refused where they occur). */
static int code_build(struct code *c, const uint8_t *lengths, int n)
{
    uint16_t offsets[MAX_BITS + 2];
    int left = 1;
    memset(c->counts, 0, sizeof c->counts);
    for (int i = 0; i < n; i++)
        c->counts[lengths[i]]++;
    c->counts[0] = 0;
    for (int len = 1; len <= MAX_BITS; len++) {
        left = (left << 1) - c->counts[len];
        if (left < 0)
            return -1;
    }
    offsets[1] = 0;
    for (int len = 1; len <= MAX_BITS; len++)
        offsets[len + 1] = (uint16_t)(offsets[len] + c->counts[len]);
    c->n_symbols = offsets[MAX_BITS + 1]; /* <= n: each counted symbol has one place */
    for (int symbol = 0; symbol < n; symbol++) {
        if (lengths[symbol])
            c->symbols[offsets[lengths[symbol]]++] = (uint16_t)symbol;
    }
    /* Codes of each length are consecutive integers from where the shorter ones end; a
     * code of len bits (read LSB first, so bit-reversed) fills every slot whose low len
     * bits are it. Not over-subscribed: each code is < 2^len, so its reversal is too. */
    memset(c->fast, 0, sizeof c->fast);
    unsigned code = 0, index = 0;
    for (int len = 1; len <= FAST_BITS; len++) {
        for (unsigned k = 0; k < c->counts[len]; k++, code++, index++) {
            unsigned reverse = 0;
            for (int b = 0; b < len; b++)
                reverse |= ((code >> b) & 1u) << (len - 1 - b);
            uint16_t entry = (uint16_t)(c->symbols[index] << 4 | len);
            for (unsigned slot = reverse; slot < (1u << FAST_BITS); slot += 1u << len)
                c->fast[slot] = entry;
        }
        code <<= 1;
    }
    return 0;
}

/* A code longer than the table, from bits (LSB first): its symbol, its length in *len;
 * -1 when the bits start no code of c. */
static int code_slow(const struct code *c, uint64_t bits, int *len)
{
    int code = 0, first = 0, index = 0;
    for (int n = 1; n <= MAX_BITS; n++) {
        code |= (int)(bits & 1);
        bits >>= 1;
        int count = c->counts[n];
        if (code - first < count) {
            int at = index + code - first; /* code >= first: a shorter prefix returned */
            if (at < 0 || at >= c->n_symbols)
                return -1;
            *len = n;
            return c->symbols[at];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

/* The symbol the bits (LSB first, at least MAX_BITS of them) start, its length in *len;
 * -1 when they start no code. */
static inline int code_decode(const struct code *c, uint64_t bits, int *len)
{
    uint16_t entry = c->fast[bits & FAST_MASK];
    if (entry & 15) {
        *len = entry & 15;
        return entry >> 4;
    }
    return code_slow(c, bits, len);
}

static struct code FIXED_LIT, FIXED_DIST;

/* What a walk reads, where it is, and what it found. */
struct walk {
    const unsigned char *data;
    uint64_t len, total_bits, pos;
    int64_t history, max_blocks; /* -1: none */
    unsigned char *types;        /* PyMem_Raw: the walk may run without the GIL */
    size_t n_types, cap_types;
    int64_t out, max_distance, far_at, far_distance; /* far_distance 0: no far match */
    int more_blocks;
    int64_t a, b; /* the numbers of a problem's message */
    struct code lit, dist, clen;
};

/* 57 or more bits from bit position at, LSB first; bytes past the end read as zero (as the
 * Python walk's window reads them). The positions a walk reads at are within 2^20 bits
 * past the end (a dynamic block's code lengths are read ahead of the check), so start + 8
 * does not overflow. */
static inline uint64_t peek(const struct walk *w, uint64_t at)
{
    uint64_t start = at >> 3, word = 0;
    if (start + 8 <= w->len) {
        memcpy(&word, w->data + start, sizeof word); /* alignment-safe; one load */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        word = __builtin_bswap64(word);
#endif
    } else {
        for (uint64_t i = 0; start + i < w->len && i < 8; i++)
            word |= (uint64_t)w->data[start + i] << (8 * i);
    }
    return word >> (at & 7);
}

/* n (<= 32) bits at w->pos, which must lie in the stream; advances past them. */
static inline int take(struct walk *w, int n, uint32_t *value)
{
    if (w->pos + (uint64_t)n > w->total_bits)
        return PROBLEM_ENDS_IN_BLOCK;
    *value = (uint32_t)(peek(w, w->pos) & ((1ull << n) - 1));
    w->pos += (uint64_t)n;
    return PROBLEM_NONE;
}

static int stored_block(struct walk *w)
{
    uint32_t length, check;
    int problem;
    w->pos = (w->pos + 7) & ~(uint64_t)7;
    if ((problem = take(w, 16, &length)) || (problem = take(w, 16, &check)))
        return problem;
    if (check != (length ^ 0xFFFF))
        return PROBLEM_STORED_LENGTH;
    w->pos += 8 * (uint64_t)length;
    if (w->pos > w->total_bits)
        return PROBLEM_ENDS_IN_STORED;
    w->out += length;
    return PROBLEM_NONE;
}

/* A dynamic block's code tables into w->lit and w->dist (the order of the Python walk's
 * checks: _dynamic_codes). */
static int dynamic_codes(struct walk *w)
{
    /* the most lengths a block declares (286 + 30), and a repeat of 138 started before */
    uint8_t lengths[286 + 30 + 138];
    uint8_t clen_lengths[19] = {0};
    uint32_t n_lit, n_dist, n_clen, v;
    int problem;
    if ((problem = take(w, 5, &n_lit)) || (problem = take(w, 5, &n_dist)) ||
        (problem = take(w, 4, &n_clen)))
        return problem;
    n_lit += 257;
    n_dist += 1;
    n_clen += 4; /* <= 19 */
    if (n_lit > 286 || n_dist > 30) {
        w->a = n_lit;
        w->b = n_dist;
        return PROBLEM_CODE_COUNTS;
    }
    for (uint32_t i = 0; i < n_clen; i++) {
        if ((problem = take(w, 3, &v)))
            return problem;
        clen_lengths[CLEN_ORDER[i]] = (uint8_t)v;
    }
    if (code_build(&w->clen, clen_lengths, 19) < 0)
        return PROBLEM_OVERSUBSCRIBED_CLEN;
    uint32_t n = 0, need = n_lit + n_dist;
    while (n < need) {
        /* the symbol is read before its bits are checked, as the Python walk reads it:
         * past the end it reads zeros, and the walk stops at the check below */
        int len, symbol = code_decode(&w->clen, peek(w, w->pos), &len);
        if (symbol < 0)
            return PROBLEM_NOT_IN_TABLE;
        w->pos += (uint64_t)len;
        if (symbol < 16) {
            lengths[n++] = (uint8_t)symbol; /* n < need <= 316 */
            continue;
        }
        uint32_t value = 0, repeat;
        if (symbol == 16) {
            if (n == 0)
                return PROBLEM_REPEAT_FIRST;
            value = lengths[n - 1];
            if ((problem = take(w, 2, &repeat)))
                return problem;
            repeat += 3;
        } else if (symbol == 17) {
            if ((problem = take(w, 3, &repeat)))
                return problem;
            repeat += 3;
        } else { /* 18: the code length code has 19 symbols */
            if ((problem = take(w, 7, &repeat)))
                return problem;
            repeat += 11;
        }
        /* n < need <= 316 and repeat <= 138: within lengths */
        memset(lengths + n, (int)value, repeat);
        n += repeat;
    }
    if (w->pos > w->total_bits)
        return PROBLEM_ENDS_IN_BLOCK;
    if (n > need)
        return PROBLEM_LENGTHS_RUN_PAST;
    if (lengths[256] == 0) /* n_lit >= 257 */
        return PROBLEM_NO_END_OF_BLOCK;
    if (code_build(&w->lit, lengths, (int)n_lit) < 0) /* n_lit <= 286 */
        return PROBLEM_OVERSUBSCRIBED_LIT;
    if (code_build(&w->dist, lengths + n_lit, (int)n_dist) < 0)
        return PROBLEM_OVERSUBSCRIBED_DIST;
    return PROBLEM_NONE;
}

/* One Huffman-coded block from w->pos to its end, or to the first match further back than
 * the history (the Python walk's _walk). The window holds the next `avail` bits from pos
 * (past the end: zeros), and is read again before a symbol when it may hold less than a
 * whole match (at most 48 bits: 15 + 5 + 15 + 13), so two literals cost one read. */
static int huffman_block(struct walk *w, const struct code *lit, const struct code *dist)
{
    uint64_t pos = w->pos, total = w->total_bits, window = 0;
    int64_t out = w->out;
    int avail = 0, problem = PROBLEM_NONE;
    for (;;) {
        if (pos >= total) {
            problem = PROBLEM_ENDS_IN_BLOCK;
            break;
        }
        if (avail < 48) {
            window = peek(w, pos);
            avail = 64 - (int)(pos & 7);
        }
        int len, symbol = code_decode(lit, window, &len);
        if (symbol < 0) {
            problem = PROBLEM_NOT_IN_TABLE;
            break;
        }
        pos += (uint64_t)len;
        window >>= len;
        avail -= len;
        if (symbol < 256) {
            out++;
            continue;
        }
        if (symbol == 256) {
            if (pos > total)
                problem = PROBLEM_ENDS_IN_BLOCK;
            break;
        }
        int index = symbol - 257;
        if (index >= 29) { /* 286 and 287: in the fixed code, defined by no table */
            problem = PROBLEM_UNDEFINED_CODE;
            break;
        }
        int extra = LEN_EXTRA[index];
        int64_t length = LEN_BASE[index] + (int64_t)(window & ((1u << extra) - 1));
        pos += (uint64_t)extra;
        window >>= extra;
        symbol = code_decode(dist, window, &len);
        if (symbol < 0) {
            problem = PROBLEM_NOT_IN_TABLE;
            break;
        }
        pos += (uint64_t)len;
        window >>= len;
        if (symbol >= 30) { /* no code has them: at most 30 distance codes */
            problem = PROBLEM_UNDEFINED_CODE;
            break;
        }
        extra = DIST_EXTRA[symbol];
        int64_t distance = DIST_BASE[symbol] + (int64_t)(window & ((1u << extra) - 1));
        pos += (uint64_t)extra;
        avail = 0; /* a match took up to 48 bits: read the window again */
        if (pos > total) {
            problem = PROBLEM_ENDS_IN_BLOCK;
            break;
        }
        if (distance > out) {
            w->a = out;
            w->b = distance;
            problem = PROBLEM_BEFORE_START;
            break;
        }
        if (distance > w->max_distance)
            w->max_distance = distance;
        if (w->history >= 0 && distance > w->history) {
            w->far_at = out;
            w->far_distance = distance;
            break;
        }
        out += length;
    }
    w->pos = pos;
    w->out = out;
    return problem;
}

static int append_type(struct walk *w, unsigned char type)
{
    if (w->n_types == w->cap_types) {
        size_t cap = w->cap_types ? 2 * w->cap_types : 16;
        unsigned char *grown = PyMem_RawRealloc(w->types, cap);
        if (grown == NULL)
            return PROBLEM_NO_MEMORY;
        w->types = grown;
        w->cap_types = cap;
    }
    w->types[w->n_types++] = type;
    return PROBLEM_NONE;
}

/* The whole walk (scan_deflate in deflate_scan.py): block after block to the final one, a
 * far match, max_blocks, or the first problem. */
static int walk_stream(struct walk *w)
{
    for (;;) {
        if (w->max_blocks >= 0 && w->n_types >= (uint64_t)w->max_blocks) {
            w->more_blocks = 1;
            return PROBLEM_NONE;
        }
        uint32_t header;
        int problem = take(w, 3, &header);
        if (problem || (problem = append_type(w, (unsigned char)(header >> 1))))
            return problem;
        switch (header >> 1) {
        case STORED:
            problem = stored_block(w);
            break;
        case FIXED:
            problem = huffman_block(w, &FIXED_LIT, &FIXED_DIST);
            break;
        case DYNAMIC:
            if (!(problem = dynamic_codes(w)))
                problem = huffman_block(w, &w->lit, &w->dist);
            break;
        default:
            return PROBLEM_RESERVED_TYPE;
        }
        if (problem || w->far_distance || (header & 1))
            return problem;
    }
}

/* Streams at least this long are walked without the GIL: some 10 us of walking or more,
 * longer than it takes to hand the GIL to another thread and take it back. */
#define RELEASE_GIL_BYTES 4096

static PyObject *scan_deflate(PyObject *self, PyObject *args)
{
    Py_buffer view;
    long long history, max_blocks;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*LL", &view, &history, &max_blocks))
        return NULL;
    struct walk *w = PyMem_RawCalloc(1, sizeof *w); /* three code tables: not the stack */
    if (w == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    w->data = view.buf;
    w->len = (uint64_t)view.len;
    w->total_bits = 8 * w->len;
    w->history = history < 0 ? -1 : history;
    w->max_blocks = max_blocks < 0 ? -1 : max_blocks;
    int problem;
    if (view.len >= RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        problem = walk_stream(w);
        Py_END_ALLOW_THREADS
    } else {
        problem = walk_stream(w);
    }
    PyObject *result;
    if (problem == PROBLEM_NO_MEMORY) {
        result = PyErr_NoMemory();
    } else if (problem) {
        result = Py_BuildValue("(iLL)", problem, (long long)w->a, (long long)w->b);
    } else {
        PyObject *far = w->far_distance
                            ? Py_BuildValue("(LL)", (long long)w->far_at,
                                            (long long)w->far_distance)
                            : Py_NewRef(Py_None);
        result = far == NULL ? NULL
                             : Py_BuildValue("(y#LLNO)", /* y# makes None of NULL */
                                             w->types ? (const char *)w->types : "",
                                             (Py_ssize_t)w->n_types, (long long)w->out,
                                             (long long)w->max_distance, far,
                                             w->more_blocks ? Py_True : Py_False);
    }
    PyMem_RawFree(w->types);
    PyMem_RawFree(w);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(scan_deflate_doc,
             "scan_deflate(stream, history, max_blocks) -> (block_types, output_bytes, "
             "max_distance, far_match, more_blocks) | (code, a, b): the walk of "
             "deflate_scan.scan_deflate (history, max_blocks: -1 for none).");

static PyMethodDef methods[] = {
    {"scan_deflate", scan_deflate, METH_VARARGS, scan_deflate_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "migcodec.codecs._deflatescan",
    "The walk of deflate_scan.py over a raw DEFLATE stream, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__deflatescan(void)
{
    uint8_t lengths[MAX_SYMBOLS];
    /* RFC 1951 3.2.6; neither is over-subscribed */
    memset(lengths, 8, 144);
    memset(lengths + 144, 9, 112);
    memset(lengths + 256, 7, 24);
    memset(lengths + 280, 8, 8);
    code_build(&FIXED_LIT, lengths, 288);
    memset(lengths, 5, 30);
    code_build(&FIXED_DIST, lengths, 30);
    return PyModule_Create(&module);
}
