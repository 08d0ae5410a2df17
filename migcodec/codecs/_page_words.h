/*
 * What both C extensions read pages with: an alignment-safe word load, and the rule that
 * decides a page is all zero. One definition, because the delta kernels (_deltas.c) find
 * a batch's zero pages in their own pass and must decide exactly as the framework's scan
 * (_pagescan.c): a page the two judged differently would travel in one mode in a frame
 * and be counted in another by the framework.
 *
 * Include after <Python.h> (for Py_ssize_t).
 */
#ifndef MIGCODEC_PAGE_WORDS_H
#define MIGCODEC_PAGE_WORDS_H

#include <stdint.h>
#include <string.h>

static inline uint64_t load_word(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* alignment-safe; compiles to one load */
    return v;
}

/* The whole-page scan of page_is_zero, for a page whose first and last words are zero: in
 * 256-byte blocks, so that a page that is mostly zero but not entirely stops at its first
 * non-zero block. Not inline: few pages get this far. */
static int page_rest_is_zero(const unsigned char *page, Py_ssize_t page_size)
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

/* Whether a page is all zero: its first and last words (two loads, inline: the common
 * non-zero page stops here), then the whole page. */
static inline int page_is_zero(const unsigned char *page, Py_ssize_t page_size)
{
    return !(load_word(page) | load_word(page + page_size - 8)) &&
           page_rest_is_zero(page, page_size);
}

#endif
