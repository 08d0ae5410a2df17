/* A stand-in for libqpl.so.1, backed by zlib, for migcodec's binding tests.
 *
 * Exports the QPL job API migcodec calls, with qpl_job laid out as in QPL's public
 * include/qpl/c_api/job.h. Compression is raw DEFLATE with a 4 KiB window (IAA's limit),
 * fixed-Huffman unless the job sets QPL_FLAG_DYNAMIC_HUFFMAN (0x2000), as QPL does;
 * decompression also uses a 4 KiB window, so a stream reaching further back fails with
 * QPL_STS_BAD_DIST_ERR as it would on the device. Test hooks:
 *   fake_qpl_set_busy(n)     the next n hardware submissions return QPL_STS_QUEUES_ARE_BUSY_ERR
 *                            (negative: every submission)
 *   fake_qpl_set_mode(mode)  0 normal, 1 no hardware (qpl_init_job on the hardware path
 *                            -> QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE), 2 hardware decompress
 *                            jobs fail with QPL_STS_BAD_DIST_ERR, 3 hardware decompress jobs
 *                            fail with QPL_STS_LIBRARY_INTERNAL_ERR (device trouble)
 *   fake_qpl_layout(out, n)  offsets and sizes as this C compiler lays qpl_job out
 *   fake_qpl_counts(out, n)  hardware jobs, software jobs, busy returns, last op/level/flags
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

typedef int qpl_status;
typedef int qpl_path_t;

struct qpl_aux_data {
    uint8_t *compress_state_ptr;
    uint8_t *decompress_state_ptr;
    uint8_t *analytics_state_ptr;
    uint8_t *middle_layer_buffer_ptr;
    uint8_t *hw_state_ptr;
    qpl_path_t path;
};

typedef struct {
    uint8_t *next_in_ptr;
    uint32_t available_in;
    uint32_t total_in;
    uint8_t *next_out_ptr;
    uint32_t available_out;
    uint32_t total_out;
    int op;
    uint32_t flags;
    uint32_t crc;
    uint32_t xor_checksum;
    uint32_t last_bit_offset;
    int level;
    int statistics_mode;
    void *huffman_table;
    void *dictionary;
    int mini_block_size;
    uint64_t *idx_array;
    uint32_t idx_max_size;
    uint32_t idx_num_written;
    uint8_t decomp_end_processing;
    uint8_t ignore_start_bits;
    uint8_t ignore_end_bits;
    uint64_t crc64_poly;
    uint64_t crc64;
    uint8_t *next_src2_ptr;
    uint32_t available_src2;
    uint32_t src1_bit_width;
    uint32_t src2_bit_width;
    uint32_t num_input_elements;
    int out_bit_width;
    uint32_t param_low;
    uint32_t param_high;
    uint32_t drop_initial_bytes;
    uint32_t initial_output_index;
    int parser;
    uint32_t first_index_min_value;
    uint32_t last_index_max_value;
    uint32_t sum_value;
    int32_t numa_id;
    struct qpl_aux_data data_ptr;
} qpl_job;

/* private area after the public struct, as the real library keeps its buffers there */
typedef struct {
    uint32_t magic;
    qpl_status pending;
    int submitted;
} fake_private;

#define MAGIC 0x51504c31u
#define PRIV(job) ((fake_private *)((uint8_t *)(job) + sizeof(qpl_job)))

enum { STS_OK = 0, STS_MORE_OUTPUT = 2, STS_MORE_INPUT = 3, STS_BUSY = 5,
       STS_NOT_SUBMITTED = 7, STS_NULL = 50, STS_OPERATION = 51, STS_PATH = 54,
       STS_INVALID_PARAM = 55, STS_LEVEL = 87, STS_BAD_DIST = 217, STS_NO_WQ = 503 };

static int g_mode = 0;
static long g_busy = 0;
static long g_counts[8]; /* hw jobs, sw jobs, busy returns, last op, last level, last flags */

int fake_qpl_set_mode(int mode) { int old = g_mode; g_mode = mode; return old; }
long fake_qpl_set_busy(long n) { long old = g_busy; g_busy = n; return old; }

int fake_qpl_counts(long *out, int n) {
    for (int i = 0; i < n && i < 8; i++) out[i] = g_counts[i];
    return 8;
}

void fake_qpl_reset(void) { memset(g_counts, 0, sizeof(g_counts)); g_busy = 0; g_mode = 0; }

int fake_qpl_layout(size_t *out, int n) {
    size_t v[] = {
        sizeof(qpl_job), offsetof(qpl_job, available_in), offsetof(qpl_job, total_in),
        offsetof(qpl_job, next_out_ptr), offsetof(qpl_job, total_out), offsetof(qpl_job, op),
        offsetof(qpl_job, flags), offsetof(qpl_job, level), offsetof(qpl_job, huffman_table),
        offsetof(qpl_job, dictionary), offsetof(qpl_job, decomp_end_processing),
        offsetof(qpl_job, crc64_poly), offsetof(qpl_job, numa_id), offsetof(qpl_job, data_ptr),
    };
    int count = (int)(sizeof(v) / sizeof(v[0]));
    for (int i = 0; i < n && i < count; i++) out[i] = v[i];
    return count;
}

qpl_status qpl_get_job_size(qpl_path_t path, uint32_t *size) {
    if (!size) return STS_NULL;
    if (path < 0 || path > 2) return STS_PATH;
    *size = (uint32_t)(sizeof(qpl_job) + sizeof(fake_private));
    return STS_OK;
}

qpl_status qpl_init_job(qpl_path_t path, qpl_job *job) {
    if (!job) return STS_NULL;
    if (path < 0 || path > 2) return STS_PATH;
    if (path == 1 && g_mode == 1) return STS_NO_WQ;
    memset(job, 0, sizeof(qpl_job));
    job->data_ptr.path = path == 0 ? 2 : path;
    job->numa_id = -1;
    PRIV(job)->magic = MAGIC;
    PRIV(job)->pending = STS_NOT_SUBMITTED;
    return STS_OK;
}

static qpl_status run(qpl_job *job) {
    const uint32_t need = 0x0001u | 0x0002u; /* FIRST | LAST: one-shot jobs only */
    g_counts[3] = job->op; g_counts[4] = job->level; g_counts[5] = job->flags;
    if (!job->next_in_ptr || !job->next_out_ptr) return STS_NULL;
    if ((job->flags & need) != need) return STS_INVALID_PARAM;
    z_stream z; memset(&z, 0, sizeof(z));
    z.next_in = job->next_in_ptr; z.avail_in = job->available_in;
    z.next_out = job->next_out_ptr; z.avail_out = job->available_out;
    int rc;
    if (job->op == 1) {
        if (job->level != 1 && job->level != 3) return STS_LEVEL;
        int strategy = (job->flags & 0x2000u) ? Z_DEFAULT_STRATEGY : Z_FIXED;
        if (deflateInit2(&z, 1, Z_DEFLATED, -12, 8, strategy) != Z_OK) return 6;
        rc = deflate(&z, Z_FINISH);
        job->total_in = (uint32_t)z.total_in; job->total_out = (uint32_t)z.total_out;
        deflateEnd(&z);
        return rc == Z_STREAM_END ? STS_OK : STS_MORE_OUTPUT;
    }
    if (job->op != 0) return STS_OPERATION;
    if (g_mode == 2 && job->data_ptr.path == 1) return STS_BAD_DIST;
    if (g_mode == 3 && job->data_ptr.path == 1) return 6; /* QPL_STS_LIBRARY_INTERNAL_ERR */
    if (inflateInit2(&z, -12) != Z_OK) return 6;
    /* one output byte per call: zlib then takes every match from its 4 KiB window, so a
     * stream reaching further back fails as it does on IAA */
    uint8_t *end = job->next_out_ptr + job->available_out;
    do {
        z.avail_out = z.next_out < end ? 1 : 0;
        rc = inflate(&z, Z_NO_FLUSH);
    } while (rc == Z_OK && z.next_out < end);
    if (rc == Z_OK && z.next_out == end) { /* output full: the stream must end here */
        uint8_t extra;
        z.next_out = &extra; z.avail_out = 1;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_STREAM_END) rc = z.avail_out == 0 ? Z_BUF_ERROR : rc;
    }
    job->total_in = (uint32_t)z.total_in; job->total_out = (uint32_t)z.total_out;
    inflateEnd(&z);
    if (rc == Z_STREAM_END) return STS_OK;
    if (rc == Z_DATA_ERROR) return STS_BAD_DIST;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) return STS_MORE_INPUT;
    return STS_MORE_OUTPUT;
}

qpl_status qpl_submit_job(qpl_job *job) {
    if (!job || PRIV(job)->magic != MAGIC) return STS_NULL;
    if (job->data_ptr.path == 1 && g_busy) {
        if (g_busy > 0) g_busy--;
        g_counts[2]++;
        return STS_BUSY;
    }
    g_counts[job->data_ptr.path == 1 ? 0 : 1]++;
    PRIV(job)->pending = run(job);
    PRIV(job)->submitted = 1;
    return STS_OK;
}

qpl_status qpl_wait_job(qpl_job *job) {
    if (!job || PRIV(job)->magic != MAGIC) return STS_NULL;
    if (!PRIV(job)->submitted) return STS_NOT_SUBMITTED;
    PRIV(job)->submitted = 0;
    return PRIV(job)->pending;
}

qpl_status qpl_execute_job(qpl_job *job) {
    qpl_status st = qpl_submit_job(job);
    return st == STS_OK ? qpl_wait_job(job) : st;
}

qpl_status qpl_fini_job(qpl_job *job) {
    if (!job || PRIV(job)->magic != MAGIC) return STS_NULL;
    PRIV(job)->magic = 0;
    return STS_OK;
}
