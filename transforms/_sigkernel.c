/* MinHash signatures of span batches for hash_function="poly32", scheme="affine32", and the
 * word shingles those span batches are made of.
 *
 * poly32_affine32: the same arithmetic as transforms/minhash.py (poly_hash32, _fmix32,
 * MinHasher._permute), in one pass over the shingles: numpy needs a (num_perm x shingles)
 * temporary and several passes over it; here each record's signature row stays in L1 cache.
 * word_shingles: minhash._spans_numpy's layout and spans, one pass over the bytes instead of
 * a dozen numpy passes with temporaries of the text's length. normalize_ascii: dedup.normalize
 * of ASCII texts without the word list str.split() builds. Plain C99 and the buffer
 * protocol only (no numpy C API), so it builds against any numpy; optional in setup.py, and
 * minhash.py falls back to numpy when it is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define POLY UINT64_C(0x9E3779B97F4A7C15)
#define LEN_MIX UINT64_C(0xC2B2AE3D27D4EB4F)

/* Two builds of compute(), one chosen at load time by CPU (GNU ifunc, so glibc only): the
 * x86-64 baseline (SSE2) has no 32-bit vector multiply or unsigned minimum, AVX2 has both
 * (~3.5x faster at 128 permutations). Never -march=native: the wheel may run elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SIG_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef SIG_CLONES
#define SIG_CLONES
#endif

/* P^n mod 2^64: a table for short spans (filled at import), squaring beyond. */
#define POW_TABLE 256
static uint64_t pow_table[POW_TABLE];

static inline uint64_t poly_pow(uint64_t n)
{
    if (n < POW_TABLE)
        return pow_table[n];
    uint64_t r = 1, x = POLY;
    for (; n; n >>= 1, x *= x)
        if (n & 1)
            r *= x;
    return r;
}

/* poly_hash32 of buf[s:e] (Horner over its bytes mod 2^64, plus len * LEN_MIX, fmix64, low 32
 * bits) from the Horner prefixes pre[k] of buf[0:k]: Horner over buf[s:e] is
 * pre[e] - pre[s] * P^(e-s) mod 2^64. One pass over the buffer, then O(1) per span: hashing
 * each span on its own would read every byte about five times (5-token shingles overlap). */
static inline uint32_t span_hash(const uint64_t *pre, int64_t s, int64_t e)
{
    const uint64_t n = (uint64_t)(e - s);
    uint64_t h = pre[e] - pre[s] * poly_pow(n) + n * LEN_MIX;
    h ^= h >> 33;
    h *= UINT64_C(0xFF51AFD7ED558CCD);
    h ^= h >> 33;
    h *= UINT64_C(0xC4CEB9FE1A85EC53);
    h ^= h >> 33;
    return (uint32_t)h;
}

/* MurmurHash3's 32-bit finalizer: datasketch's affine32 pre-mixes every hash with it. */
static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= UINT32_C(0x85EBCA6B);
    h ^= h >> 13;
    h *= UINT32_C(0xC2B2AE35);
    h ^= h >> 16;
    return h;
}

enum { SIG_OK = 0, SIG_BAD_OFFSETS, SIG_BAD_SPAN };

/* Fills out[r * num_perm + k]; pre: scratch of buf_len + 1 items. Every offset and span is
 * checked as it is read, into locals that are then used: nothing is read out of bounds even if
 * another thread rewrites the index arrays meanwhile (the GIL is released). On error, *where
 * is the bad record or shingle. Shingles go four at a time through the permutation loop, so
 * a, b and the row are loaded once per four; a short group repeats its first hash (the
 * minimum does not change). */
SIG_CLONES
static int compute(const unsigned char *buf, int64_t buf_len, const int64_t *starts,
                   const int64_t *ends, int64_t n_shingles, const int64_t *offsets,
                   int64_t n_records, const uint32_t *restrict a, const uint32_t *restrict b,
                   int64_t num_perm, uint32_t *restrict out, uint64_t *restrict pre,
                   int64_t *where)
{
    pre[0] = 0;
    for (int64_t i = 0; i < buf_len; i++)
        pre[i + 1] = pre[i] * POLY + buf[i];
    for (int64_t r = 0; r < n_records; r++) {
        uint32_t *restrict row = out + r * num_perm;
        const int64_t lo = offsets[r], hi = offsets[r + 1];
        if (lo < 0 || hi < lo || hi > n_shingles) {
            *where = r;
            return SIG_BAD_OFFSETS;
        }
        for (int64_t k = 0; k < num_perm; k++)
            row[k] = UINT32_MAX;
        for (int64_t j = lo; j < hi; j += 4) {
            const int m = hi - j < 4 ? (int)(hi - j) : 4;
            uint32_t hv[4];
            for (int q = 0; q < m; q++) {
                const int64_t s = starts[j + q], e = ends[j + q];
                if (s < 0 || e < s || e > buf_len) {
                    *where = j + q;
                    return SIG_BAD_SPAN;
                }
                hv[q] = fmix32(span_hash(pre, s, e));
            }
            for (int q = m; q < 4; q++)
                hv[q] = hv[0];
            const uint32_t h0 = hv[0], h1 = hv[1], h2 = hv[2], h3 = hv[3];
            for (int64_t k = 0; k < num_perm; k++) {
                const uint32_t ak = a[k], bk = b[k];
                uint32_t v0 = ak * h0 + bk, v1 = ak * h1 + bk;
                const uint32_t v2 = ak * h2 + bk, v3 = ak * h3 + bk;
                v0 = v1 < v0 ? v1 : v0;
                v0 = v2 < v0 ? v2 : v0;
                v0 = v3 < v0 ? v3 : v0;
                row[k] = v0 < row[k] ? v0 : row[k];
            }
        }
    }
    return SIG_OK;
}

/* Byte order and type letter of a buffer format ('@', '=' or the native-order prefix). */
static int format_is(const Py_buffer *view, const char *letters, Py_ssize_t itemsize)
{
    const char *f = view->format ? view->format : "B";
#if PY_LITTLE_ENDIAN
    const char native = '<';
#else
    const char native = '>';
#endif
    if (*f == '@' || *f == '=' || *f == native)
        f++;
    return view->itemsize == itemsize && f[0] != '\0' && f[1] == '\0' &&
           strchr(letters, f[0]) != NULL;
}

static int overlaps(const Py_buffer *x, const Py_buffer *y)
{
    const char *p = x->buf, *q = y->buf;
    return x->len > 0 && y->len > 0 && p < q + y->len && q < p + x->len;
}

PyDoc_STRVAR(poly32_affine32_doc,
             "poly32_affine32(buf, starts, ends, offsets, a, b, out)\n--\n\n"
             "MinHash signatures of a span batch (hash \"poly32\", scheme \"affine32\").\n\n"
             "Shingle j is buf[starts[j]:ends[j]]; record r owns shingles\n"
             "offsets[r]:offsets[r+1]. starts, ends, offsets: int64; a, b: uint32 of length\n"
             "num_perm; out: writable C-contiguous uint32 of records * num_perm items, filled\n"
             "row by row (MAX_HASH where a record has no shingles). Raises ValueError on\n"
             "wrong types, sizes or out-of-bounds offsets and spans. Releases the GIL.");

static PyObject *poly32_affine32(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[7];
    if (!PyArg_ParseTuple(args, "OOOOOOO:poly32_affine32", &objs[0], &objs[1], &objs[2],
                          &objs[3], &objs[4], &objs[5], &objs[6]))
        return NULL;
    static const char *names[7] = {"buf", "starts", "ends", "offsets", "a", "b", "out"};
    Py_buffer v[7];
    int got = 0;
    PyObject *result = NULL;
    uint64_t *pre = NULL;
    for (; got < 7; got++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
        if (got == 6)
            flags |= PyBUF_WRITABLE;
        if (PyObject_GetBuffer(objs[got], &v[got], flags) < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_BufferError) ||
                PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: expected a %sC-contiguous buffer, got %.100s",
                             names[got], got == 6 ? "writable " : "",
                             Py_TYPE(objs[got])->tp_name);
            }
            goto done;
        }
    }
    const Py_buffer *buf = &v[0], *starts = &v[1], *ends = &v[2], *offsets = &v[3];
    const Py_buffer *a = &v[4], *b = &v[5], *out = &v[6];
    if (!format_is(buf, "Bbc", 1)) {
        PyErr_Format(PyExc_ValueError, "buf: expected bytes (format 'B'), got format '%s'",
                     buf->format ? buf->format : "B");
        goto done;
    }
    for (int i = 1; i <= 3; i++)
        if (!format_is(&v[i], "ql", 8)) {
            PyErr_Format(PyExc_ValueError, "%s: expected int64 items, got format '%s' of %zd bytes",
                         names[i], v[i].format ? v[i].format : "B", v[i].itemsize);
            goto done;
        }
    for (int i = 4; i <= 6; i++)
        if (!format_is(&v[i], "IL", 4)) {
            PyErr_Format(PyExc_ValueError, "%s: expected uint32 items, got format '%s' of %zd bytes",
                         names[i], v[i].format ? v[i].format : "B", v[i].itemsize);
            goto done;
        }
    const Py_ssize_t n_shingles = starts->len / 8, n_offsets = offsets->len / 8;
    const Py_ssize_t num_perm = a->len / 4;
    if (ends->len != starts->len) {
        PyErr_Format(PyExc_ValueError, "starts and ends differ in length (%zd != %zd)",
                     n_shingles, ends->len / 8);
        goto done;
    }
    if (n_offsets < 1) {
        PyErr_SetString(PyExc_ValueError, "offsets: needs at least one item (records + 1)");
        goto done;
    }
    if (b->len != a->len) {
        PyErr_Format(PyExc_ValueError, "a and b differ in length (%zd != %zd)", num_perm,
                     b->len / 4);
        goto done;
    }
    const Py_ssize_t n_records = n_offsets - 1;
    if (num_perm > 0 && n_records > PY_SSIZE_T_MAX / 4 / num_perm) {
        PyErr_SetString(PyExc_ValueError, "out: records * num_perm overflows");
        goto done;
    }
    if (out->len != n_records * num_perm * 4) {
        PyErr_Format(PyExc_ValueError,
                     "out: expected %zd records * %zd permutations = %zd uint32 items, got %zd",
                     n_records, num_perm, n_records * num_perm, out->len / 4);
        goto done;
    }
    for (int i = 0; i < 6; i++)
        if (overlaps(out, &v[i])) {
            PyErr_Format(PyExc_ValueError, "out: shares memory with %s", names[i]);
            goto done;
        }

    if ((size_t)buf->len >= SIZE_MAX / sizeof(uint64_t) ||
        !(pre = PyMem_RawMalloc(sizeof(uint64_t) * ((size_t)buf->len + 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t where = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = compute(buf->buf, buf->len, starts->buf, ends->buf, n_shingles, offsets->buf,
                     n_records, a->buf, b->buf, num_perm, out->buf, pre, &where);
    Py_END_ALLOW_THREADS
    if (status == SIG_BAD_OFFSETS) {
        const int64_t *o = offsets->buf;
        PyErr_Format(PyExc_ValueError,
                     "offsets: record %lld owns shingles %lld:%lld, outside 0:%zd or decreasing",
                     (long long)where, (long long)o[where], (long long)o[where + 1], n_shingles);
    } else if (status == SIG_BAD_SPAN) {
        const int64_t *s = starts->buf, *e = ends->buf;
        PyErr_Format(PyExc_ValueError, "shingle %lld: span %lld:%lld outside buf[0:%zd]",
                     (long long)where, (long long)s[where], (long long)e[where], buf->len);
    } else {
        result = Py_NewRef(Py_None);
    }
done:
    PyMem_RawFree(pre);
    while (got-- > 0)
        PyBuffer_Release(&v[got]);
    return result;
}

/* ---- word shingles ------------------------------------------------------------------- */

/* Token counts of the segments (separated by '\n', never a word byte) into per_segment[0:n]
 * (segments past n are counted, not stored). Returns the number of newlines; *tokens and
 * *token_bytes get the number of tokens and their total length. Branch-free but for the
 * newlines: a token boundary every few bytes would defeat the branch predictor. */
static int64_t count_tokens(const unsigned char *text, int64_t len, const unsigned char *word,
                            int64_t *per_segment, int64_t n, int64_t *tokens,
                            int64_t *token_bytes)
{
    int64_t all = 0, here = 0, bytes = 0, seg = 0;
    unsigned prev = 0;
    for (int64_t i = 0; i < len; i++) {
        const unsigned char c = text[i];
        const unsigned w = word[c] != 0, start = w & ~prev;
        here += start;
        bytes += w;
        prev = w;
        if (c == '\n') {
            if (seg < n)
                per_segment[seg] = here;
            all += here, here = 0, seg++;
        }
    }
    if (seg < n)
        per_segment[seg] = here;
    *tokens = all + here;
    *token_bytes = bytes;
    return seg;
}

/* Lays the n_tokens tokens one space apart into laid (laid_len bytes) and records where each
 * starts and ends there. Branch-free: every byte is stored at pos, which only word bytes
 * advance, so a non-word byte is overwritten by what follows it; the loop stops at the last
 * word byte, so nothing is stored past the laid tokens. */
static void lay_tokens(const unsigned char *text, int64_t len, const unsigned char *word,
                       unsigned char *laid, int64_t laid_len, int64_t n_tokens,
                       int64_t *tok_start, int64_t *tok_end)
{
    int64_t last = len - 1;
    while (last >= 0 && !word[text[last]])
        last--;
    int64_t t = 0, pos = -1; /* pos -1: the first token's "separator" is before the buffer */
    unsigned prev = 0;
    tok_start[n_tokens] = 0; /* the slot written for bytes that start no token */
    for (int64_t i = 0; i <= last; i++) {
        const unsigned char c = text[i];
        const unsigned w = word[c] != 0, start = w & ~prev;
        pos += start; /* the space before a token */
        tok_start[start ? t : n_tokens] = pos;
        t += start;
        laid[pos < 0 ? 0 : pos] = w ? c : ' ';
        pos += w;
        prev = w;
    }
    for (int64_t k = 0; k + 1 < n_tokens; k++)
        tok_end[k] = tok_start[k + 1] - 1;
    if (n_tokens)
        tok_end[n_tokens - 1] = laid_len;
}

/* Shingle spans per segment (n = min(field_n, tokens) tokens each; a segment without tokens
 * has none) and each record's first shingle. */
static void segment_shingles(const int64_t *per_segment, const int64_t *field_n,
                             int64_t n_segments, const int64_t *record_fields, int64_t n_records,
                             const int64_t *tok_start, const int64_t *tok_end, int64_t *starts,
                             int64_t *ends, int64_t *offsets)
{
    int64_t first_token = 0, j = 0, f = 0;
    offsets[0] = 0;
    for (int64_t r = 0; r < n_records; r++) {
        for (int64_t stop = f + record_fields[r + 1]; f < stop; f++) {
            const int64_t m = per_segment[f], n = field_n[f] < m ? field_n[f] : m;
            for (int64_t k = 0; m > 0 && k <= m - n; k++, j++) {
                starts[j] = tok_start[first_token + k];
                ends[j] = tok_end[first_token + k + n - 1];
            }
            first_token += m;
        }
        offsets[r + 1] = j;
    }
}

static PyObject *new_bytes(int64_t n, char **data)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (b)
        *data = PyBytes_AS_STRING(b);
    return b;
}

PyDoc_STRVAR(word_shingles_doc,
             "word_shingles(text, word, field_n, record_fields)\n--\n\n"
             "Word shingles of a batch: (buf, starts, ends, offsets), the last three int64 bytes.\n\n"
             "text: bytes, the segments (field texts) joined by b'\\n'; word: 256 bytes, nonzero\n"
             "for the bytes a token is made of (never b'\\n'); field_n: int64 shingle size (>= 1)\n"
             "per segment; record_fields: int64, 0 then the number of segments of each record.\n"
             "Tokens (maximal runs of word bytes) are laid one space apart in buf; shingle j is\n"
             "buf[starts[j]:ends[j]], n consecutive tokens of one segment, n = min(field_n,\n"
             "tokens of the segment); record r owns shingles offsets[r]:offsets[r+1].\n"
             "Raises ValueError on inconsistent arguments. Releases the GIL.");

static PyObject *word_shingles(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[4];
    if (!PyArg_ParseTuple(args, "OOOO:word_shingles", &objs[0], &objs[1], &objs[2], &objs[3]))
        return NULL;
    static const char *names[4] = {"text", "word", "field_n", "record_fields"};
    Py_buffer v[4];
    int got = 0;
    PyObject *out[4] = {NULL, NULL, NULL, NULL}, *result = NULL;
    int64_t *per_segment = NULL, *tok = NULL;
    for (; got < 4; got++)
        if (PyObject_GetBuffer(objs[got], &v[got], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_BufferError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous buffer, got %.100s",
                             names[got], Py_TYPE(objs[got])->tp_name);
            }
            goto done;
        }
    const Py_buffer *text = &v[0], *word = &v[1], *field_n = &v[2], *record_fields = &v[3];
    for (int i = 0; i < 2; i++)
        if (!format_is(&v[i], "Bbc?", 1)) {
            PyErr_Format(PyExc_ValueError, "%s: expected bytes, got format '%s'", names[i],
                         v[i].format ? v[i].format : "B");
            goto done;
        }
    for (int i = 2; i < 4; i++)
        if (!format_is(&v[i], "ql", 8)) {
            PyErr_Format(PyExc_ValueError, "%s: expected int64 items, got format '%s' of %zd bytes",
                         names[i], v[i].format ? v[i].format : "B", v[i].itemsize);
            goto done;
        }
    if (!PyBytes_Check(objs[0]) || !PyBytes_Check(objs[1])) {
        /* immutable, so nothing changes them while the GIL is released */
        PyErr_Format(PyExc_ValueError, "%s: expected bytes, got %.100s",
                     PyBytes_Check(objs[0]) ? "word" : "text",
                     Py_TYPE(objs[PyBytes_Check(objs[0]) ? 1 : 0])->tp_name);
        goto done;
    }
    const unsigned char *table = word->buf, *bytes = text->buf;
    if (word->len != 256 || table['\n']) {
        PyErr_SetString(PyExc_ValueError, "word: expected 256 bytes, zero at b'\\n'");
        goto done;
    }
    const int64_t n_segments = field_n->len / 8, n_records = record_fields->len / 8 - 1;
    if (n_records < 0 || ((const int64_t *)record_fields->buf)[0] != 0) {
        PyErr_SetString(PyExc_ValueError, "record_fields: expected 0, then one count per record");
        goto done;
    }
    /* Private copies of the index arrays (others could rewrite them while the GIL is
     * released); per_segment: the token count of each segment. */
    if (!(per_segment = PyMem_RawCalloc(2 * (size_t)n_segments + (size_t)n_records + 2,
                                        sizeof(int64_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *sizes = per_segment + n_segments + 1, *fields = sizes + n_segments;
    memcpy(sizes, field_n->buf, 8 * (size_t)n_segments);
    memcpy(fields, record_fields->buf, 8 * ((size_t)n_records + 1));
    int64_t total = 0;
    for (int64_t r = 1; r <= n_records; r++) {
        if (fields[r] < 0 || fields[r] > n_segments - total) {
            PyErr_Format(PyExc_ValueError, "record_fields: record %lld has %lld segments, "
                         "%lld of %lld left", (long long)(r - 1), (long long)fields[r],
                         (long long)(n_segments - total), (long long)n_segments);
            goto done;
        }
        total += fields[r];
    }
    for (int64_t f = 0; f < n_segments; f++)
        if (sizes[f] < 1) {
            PyErr_Format(PyExc_ValueError, "field_n: segment %lld has shingle size %lld (< 1)",
                         (long long)f, (long long)sizes[f]);
            goto done;
        }
    int64_t n_tokens, token_bytes, newlines;
    Py_BEGIN_ALLOW_THREADS
    newlines = count_tokens(bytes, text->len, table, per_segment, n_segments, &n_tokens,
                            &token_bytes);
    Py_END_ALLOW_THREADS
    if (total != n_segments || (n_segments ? newlines != n_segments - 1 : text->len != 0)) {
        PyErr_Format(PyExc_ValueError, "text has %lld segments, field_n %lld, record_fields %lld",
                     (long long)(text->len || n_segments ? newlines + 1 : 0),
                     (long long)n_segments, (long long)total);
        goto done;
    }
    int64_t n_shingles = 0;
    for (int64_t f = 0; f < n_segments; f++) {
        const int64_t m = per_segment[f], n = sizes[f] < m ? sizes[f] : m;
        n_shingles += m > 0 ? m - n + 1 : 0;
    }
    const int64_t laid_len = n_tokens ? token_bytes + n_tokens - 1 : 0;
    char *laid, *starts, *ends, *offsets;
    if (!(tok = PyMem_RawMalloc(sizeof(int64_t) * 2 * ((size_t)n_tokens + 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(out[0] = new_bytes(laid_len, &laid)) || !(out[1] = new_bytes(8 * n_shingles, &starts)) ||
        !(out[2] = new_bytes(8 * n_shingles, &ends)) ||
        !(out[3] = new_bytes(8 * (n_records + 1), &offsets)))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    lay_tokens(bytes, text->len, table, (unsigned char *)laid, laid_len, n_tokens, tok,
               tok + n_tokens + 1);
    segment_shingles(per_segment, sizes, n_segments, fields, n_records, tok,
                     tok + n_tokens + 1, (int64_t *)starts, (int64_t *)ends, (int64_t *)offsets);
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(4, out[0], out[1], out[2], out[3]);
done:
    for (int i = 0; i < 4; i++)
        Py_XDECREF(out[i]);
    PyMem_RawFree(per_segment);
    PyMem_RawFree(tok);
    while (got-- > 0)
        PyBuffer_Release(&v[got]);
    return result;
}

/* ---- normalised ASCII text ------------------------------------------------------------ */

/* ASCII whitespace as str.split() and the regex \s agree on it (\x1c-\x1f, which only
 * str.split() counts, make normalize_ascii answer None). */
static inline int ascii_space(Py_UCS1 c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

PyDoc_STRVAR(normalize_ascii_doc,
             "normalize_ascii(texts)\n--\n\n"
             "transforms.dedup.normalize of each ASCII str of a list: lower case, whitespace\n"
             "runs as one space, stripped. None for the others (non-ASCII, or holding one of\n"
             "\\x1c-\\x1f): the caller normalises those in Python.");

static PyObject *normalize_ascii(PyObject *self, PyObject *texts)
{
    (void)self;
    if (!PyList_Check(texts)) {
        PyErr_Format(PyExc_TypeError, "texts: expected a list, got %.100s",
                     Py_TYPE(texts)->tp_name);
        return NULL;
    }
    const Py_ssize_t n = PyList_GET_SIZE(texts);
    PyObject *out = PyList_New(n);
    Py_UCS1 *scratch = NULL;
    Py_ssize_t capacity = 0;
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i), *norm = NULL;
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "texts[%zd]: expected str, got %.100s", i,
                         Py_TYPE(text)->tp_name);
            goto fail;
        }
        if (!PyUnicode_IS_ASCII(text)) {
            PyList_SET_ITEM(out, i, Py_NewRef(Py_None));
            continue;
        }
        const Py_ssize_t len = PyUnicode_GET_LENGTH(text);
        const Py_UCS1 *src = PyUnicode_1BYTE_DATA(text);
        if (len > capacity) {
            PyMem_Free(scratch);
            capacity = len > 2 * capacity ? len : 2 * capacity;
            if (!(scratch = PyMem_Malloc((size_t)capacity))) {
                PyErr_NoMemory();
                goto fail;
            }
        }
        Py_ssize_t m = 0;
        int pending = 0, separator = 0;
        for (Py_ssize_t k = 0; k < len; k++) {
            const Py_UCS1 c = src[k];
            if (ascii_space(c)) {
                pending = m > 0;
                continue;
            }
            separator |= c >= 0x1c && c <= 0x1f;
            if (pending)
                scratch[m++] = ' ', pending = 0;
            scratch[m++] = c >= 'A' && c <= 'Z' ? c + 32 : c;
        }
        if (separator)
            norm = Py_NewRef(Py_None);
        else if ((norm = PyUnicode_New(m, 127)))
            memcpy(PyUnicode_1BYTE_DATA(norm), scratch, (size_t)m);
        if (!norm)
            goto fail;
        PyList_SET_ITEM(out, i, norm);
    }
    PyMem_Free(scratch);
    return out;
fail:
    PyMem_Free(scratch);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"poly32_affine32", poly32_affine32, METH_VARARGS, poly32_affine32_doc},
    {"word_shingles", word_shingles, METH_VARARGS, word_shingles_doc},
    {"normalize_ascii", normalize_ascii, METH_O, normalize_ascii_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "transforms._sigkernel",
    "C kernels of word shingles and MinHash signatures (poly32 + affine32); see\n"
    "transforms/minhash.py.",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__sigkernel(void)
{
    uint64_t p = 1;
    for (int i = 0; i < POW_TABLE; i++, p *= POLY)
        pow_table[i] = p;
    return PyModuleDef_Init(&module);
}
