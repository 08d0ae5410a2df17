/* A stand-in for libqatzip.so.3, backed by zlib, for migcodec's binding tests.
 *
 * Exports the QATzip API 2.x entry points migcodec calls, with the structures laid out as in
 * QATzip's public qatzip.h, plus test hooks:
 *   fake_qz_set_mode(mode)   0 hardware, 1 QATzip software backup (qzInit -> QZ_NO_HW),
 *                            2 no hardware and no backup (qzInit -> QZ_NOSW_NO_HW),
 *                            3 qzCompress fails (QZ_FAIL), 4 qzDecompress -> QZ_DATA_ERROR,
 *                            5 hardware session, but qzCompressExt flags software execution
 *   fake_qz_layout(out, n)   offsets and sizes as this C compiler lays the structs out
 *   fake_qz_last(out, n)     what the last qzSetupSessionDeflate / qzCompress received
 * Like QATzip, compression writes one gzip member per hardware buffer (hw_buff_sz).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    signed long int hw_session_stat;
    int thd_sess_stat;
    void *internal;
    unsigned long total_in;
    unsigned long total_out;
} QzSession_T;

typedef struct {
    int direction;
    unsigned int comp_lvl;
    unsigned char comp_algorithm;
    unsigned int max_forks;
    unsigned char sw_backup;
    unsigned int hw_buff_sz;
    unsigned int strm_buff_sz;
    unsigned int input_sz_thrshold;
    unsigned int req_cnt_thrshold;
    unsigned int wait_cnt_thrshold;
    int polling_mode;
    unsigned int is_sensitive_mode;
} QzSessionParamsCommon_T;

typedef struct {
    QzSessionParamsCommon_T common_params;
    int huffman_hdr;
    int data_fmt;
} QzSessionParamsDeflate_T;

enum { QZ_OK = 0, QZ_PARAMS = -1, QZ_FAIL = -2, QZ_BUF_ERROR = -3, QZ_DATA_ERROR = -4,
       QZ_NO_HW = 11, QZ_NOSW_NO_HW = -101 };

typedef struct {
    unsigned int level;
    unsigned int hw_buff_sz;
    int data_fmt;
} fake_state;

static int g_mode = 0;
static long g_last[8];

int fake_qz_set_mode(int mode) { int old = g_mode; g_mode = mode; return old; }

int fake_qz_layout(size_t *out, int n) {
    size_t v[] = {
        sizeof(QzSession_T), offsetof(QzSession_T, internal), offsetof(QzSession_T, total_out),
        sizeof(QzSessionParamsDeflate_T),
        offsetof(QzSessionParamsDeflate_T, common_params.comp_lvl),
        offsetof(QzSessionParamsDeflate_T, common_params.sw_backup),
        offsetof(QzSessionParamsDeflate_T, common_params.hw_buff_sz),
        offsetof(QzSessionParamsDeflate_T, common_params.polling_mode),
        offsetof(QzSessionParamsDeflate_T, huffman_hdr),
        offsetof(QzSessionParamsDeflate_T, data_fmt),
    };
    int count = (int)(sizeof(v) / sizeof(v[0]));
    for (int i = 0; i < n && i < count; i++) out[i] = v[i];
    return count;
}

/* [0] comp_lvl [1] data_fmt [2] sw_backup [3] direction [4] compress calls [5] last=1 */
int fake_qz_last(long *out, int n) {
    for (int i = 0; i < n && i < 8; i++) out[i] = g_last[i];
    return 8;
}

int qzInit(QzSession_T *sess, unsigned char sw_backup) {
    if (!sess) return QZ_PARAMS;
    if (g_mode == 2) return QZ_NOSW_NO_HW;
    sess->hw_session_stat = g_mode == 1 ? QZ_NO_HW : QZ_OK;
    (void)sw_backup;
    return g_mode == 1 ? QZ_NO_HW : QZ_OK;
}

int qzGetDefaultsDeflate(QzSessionParamsDeflate_T *p) {
    if (!p) return QZ_PARAMS;
    memset(p, 0, sizeof(*p));
    p->common_params.direction = 2;
    p->common_params.comp_lvl = 1;
    p->common_params.comp_algorithm = 8;
    p->common_params.max_forks = 3;
    p->common_params.sw_backup = 1;
    p->common_params.hw_buff_sz = 64 * 1024;
    p->common_params.strm_buff_sz = 64 * 1024;
    p->common_params.input_sz_thrshold = 1024;
    p->common_params.req_cnt_thrshold = 32;
    p->common_params.wait_cnt_thrshold = 8;
    p->huffman_hdr = 0;
    p->data_fmt = 2; /* QZ_DEFLATE_GZIP_EXT */
    return QZ_OK;
}

int qzSetupSessionDeflate(QzSession_T *sess, QzSessionParamsDeflate_T *p) {
    if (!sess || !p) return QZ_PARAMS;
    const QzSessionParamsCommon_T *c = &p->common_params;
    g_last[0] = c->comp_lvl; g_last[1] = p->data_fmt; g_last[2] = c->sw_backup;
    g_last[3] = c->direction;
    if (c->comp_lvl < 1 || c->comp_lvl > 9 || p->data_fmt < 0 || p->data_fmt > 3 ||
        c->comp_algorithm != 8 || c->hw_buff_sz < 1024 || (c->hw_buff_sz & (c->hw_buff_sz - 1)))
        return QZ_PARAMS;
    fake_state *st = calloc(1, sizeof(*st));
    if (!st) return QZ_FAIL;
    st->level = c->comp_lvl; st->hw_buff_sz = c->hw_buff_sz; st->data_fmt = p->data_fmt;
    sess->internal = st;
    return g_mode == 1 ? QZ_NO_HW : QZ_OK;
}

static int compress_members(fake_state *st, const unsigned char *src, unsigned int *src_len,
                            unsigned char *dest, unsigned int *dest_len) {
    unsigned int done = 0, out = 0;
    while (done < *src_len || (done == 0 && *src_len == 0)) {
        unsigned int chunk = *src_len - done;
        if (chunk > st->hw_buff_sz) chunk = st->hw_buff_sz;
        z_stream z; memset(&z, 0, sizeof(z));
        if (deflateInit2(&z, (int)st->level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return QZ_FAIL;
        z.next_in = (Bytef *)(src + done); z.avail_in = chunk;
        z.next_out = dest + out; z.avail_out = *dest_len - out;
        int rc = deflate(&z, Z_FINISH);
        unsigned int produced = (unsigned int)z.total_out;
        deflateEnd(&z);
        if (rc != Z_STREAM_END) return QZ_BUF_ERROR;
        done += chunk; out += produced;
        if (*src_len == 0) break;
    }
    *src_len = done; *dest_len = out;
    return QZ_OK;
}

int qzCompressExt(QzSession_T *sess, const unsigned char *src, unsigned int *src_len,
                  unsigned char *dest, unsigned int *dest_len, unsigned int last,
                  uint64_t *ext_rc) {
    if (!sess || !sess->internal || !src_len || !dest_len) return QZ_PARAMS;
    g_last[4]++; g_last[5] = last;
    if (ext_rc) *ext_rc = (g_mode == 1 || g_mode == 5) ? (1u << 4) : 0;
    if (g_mode == 3) return QZ_FAIL;
    return compress_members((fake_state *)sess->internal, src, src_len, dest, dest_len);
}

int qzCompress(QzSession_T *sess, const unsigned char *src, unsigned int *src_len,
               unsigned char *dest, unsigned int *dest_len, unsigned int last) {
    return qzCompressExt(sess, src, src_len, dest, dest_len, last, NULL);
}

int qzDecompress(QzSession_T *sess, const unsigned char *src, unsigned int *src_len,
                 unsigned char *dest, unsigned int *dest_len) {
    if (!sess || !src_len || !dest_len) return QZ_PARAMS;
    if (g_mode == 4) return QZ_DATA_ERROR;
    unsigned int in = 0, out = 0;
    while (in < *src_len) {
        z_stream z; memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 31) != Z_OK) return QZ_FAIL;
        z.next_in = (Bytef *)(src + in); z.avail_in = *src_len - in;
        z.next_out = dest + out; z.avail_out = *dest_len - out;
        int rc = inflate(&z, Z_FINISH);
        unsigned int used = (unsigned int)z.total_in, produced = (unsigned int)z.total_out;
        inflateEnd(&z);
        if (rc == Z_BUF_ERROR && z.avail_out == 0) return QZ_BUF_ERROR;
        if (rc != Z_STREAM_END) return QZ_DATA_ERROR;
        in += used; out += produced;
    }
    *src_len = in; *dest_len = out;
    return QZ_OK;
}

int qzTeardownSession(QzSession_T *sess) {
    if (!sess) return QZ_PARAMS;
    free(sess->internal); sess->internal = NULL;
    return QZ_OK;
}

int qzClose(QzSession_T *sess) { return sess ? QZ_OK : QZ_PARAMS; }
