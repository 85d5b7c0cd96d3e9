/*
 * kvverify.evidence._scan: the native path of the log parser (kvverify/evidence/parse.py).
 *
 * The pure-Python scanner in parse.py is the reference; this module must give exactly its
 * events for any bytes and any chunking (tests/test_native.py fuzzes one against the other).
 * It does the per-line work of a DEBUG log in C and hands Python only what is rare:
 *
 *   1. prepare() walks the lines of buf[start:end] without the GIL. On each line it finds
 *      where the regexes of patterns.py could match: the start of the line (LINE_START /
 *      FIRST_LINE) and every "]" (ANCHORED), trying the literal every alternative starts
 *      with ("leads", handed over by configure() from patterns.py, so the two cannot drift
 *      apart). A line whose first possible match is one of the hot alternatives below is
 *      recognised here, fields and all; a line where anything else could match is recorded
 *      as "deferred", and Python runs its own regexes and handlers on that line (on a few
 *      such lines close together at once).
 *      The hot alternatives (docs/trtllm-logs.md section 2.2 and 2.4), the only lines a
 *      DEBUG log has by the million:
 *        lookup / bare_lookup   "...::loadOrAllocateBlocks[ for request N] - <outcome>"
 *        copy                   "copyBlock entered: srcId=N, dstId=N, isOffload=true|false"
 *        addseq / addseqw / bare_addseqw
 *                               "[...::]addSequence: Request R, inputLength L,
 *                                prepopulatedPromptLen P[, numConnectorMatchedTokens C]"
 *        release / bare_release "...::releaseBlocks Request R, N blocks stored ..."
 *        prepop                 "Setting pre-populated prompt length for request R to P
 *                                (promptLen=L)."
 *   2. Runs.replay() turns those records into events with the GIL held: it coalesces
 *      per-block lines into BlockLookups / BlockCopies runs exactly as parse.py's _Runs does,
 *      builds the event objects, and calls back into Python for deferred lines. The run
 *      state lives here, so Python handlers of deferred lines extend the same runs.
 *
 * What "exactly" takes, line by line: one match per line, the first; a body at the start of
 * a line beats any after a "]"; at one "]" the alternatives are tried in ANCHORED's order.
 * The leads of one table never prefix one another (patterns.py asserts it), so at most one
 * lead fits at a "]"; when its hot recognizer fails, nothing else can match at that "]"
 * (the ERROR look-behind, the only alternative without a lead, is checked first and defers).
 * Rank and window are read back from the bytes before the match exactly as parse.py's
 * _rank, _window, _fast_rank and _lookup_key do; as with them, only bytes of the line itself
 * decide, so a line gives the same event wherever the chunks were cut.
 * A number too large for 64 bits (Python reads any size) defers the line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define KV_SSE2 1
#endif

/* Index of the lowest set bit of a nonzero word. */
#if defined(__GNUC__) || defined(__clang__)
#define lowest_bit(x) __builtin_ctz(x)
#elif defined(_MSC_VER)
#include <intrin.h>
static __inline int
lowest_bit(unsigned x)
{
    unsigned long i;
    _BitScanForward(&i, x);
    return (int)i;
}
#else
static int
lowest_bit(unsigned x)
{
    int i = 0;
    while (!(x & 1u)) {
        x >>= 1;
        i++;
    }
    return i;
}
#endif

#ifndef T_OBJECT_EX
#define T_OBJECT_EX 16
#endif

/* ------------------------------------------------------------------------------------------ */
/* Leads: the literals the alternatives of patterns.py start with                             */
/* ------------------------------------------------------------------------------------------ */

/* What a lead leads to: a hot alternative recognised here, or anything else (deferred). */
enum {
    ACT_DEFER = 0,
    K_LOOKUP,
    K_BARE_LOOKUP,
    K_COPY,
    K_ADDSEQ,
    K_ADDSEQW,
    K_BARE_ADDSEQW,
    K_RELEASE,
    K_BARE_RELEASE,
    K_PREPOP,
    N_KINDS
};

/* The hot alternatives: the kind patterns.py names them by, the table their lead is in, and
 * the lead this file's recognizer expects. configure() makes a kind hot only if patterns.py
 * hands over exactly that lead in that table; otherwise its lines are deferred. */
enum { TAB_SPACE = 0, TAB_TAIL = 1, TAB_START = 2, N_TABLES };

static const struct {
    const char *kind;
    int table;
    const char *lead;
} HOT[N_KINDS] = {
    {NULL, 0, NULL},
    {"lookup", TAB_TAIL, "::loadOrAllocateBlocks"},
    {"bare_lookup", TAB_SPACE, "BlockManager::loadOrAllocateBlocks"},
    {"copy", TAB_SPACE, "copyBlock entered: "},
    {"addseq", TAB_SPACE, "addSequence: Request "},
    {"addseqw", TAB_TAIL, "::addSequence: Request "},
    {"bare_addseqw", TAB_SPACE, "BlockManager::addSequence: Request "},
    {"release", TAB_TAIL, "::releaseBlocks Request "},
    {"bare_release", TAB_SPACE, "BlockManager::releaseBlocks Request "},
    {"prepop", TAB_SPACE, "Setting pre-populated prompt length for request "},
};

#define MAX_LEADS 64
#define MAX_LEAD_LEN 128

typedef struct {
    unsigned char text[MAX_LEAD_LEN];
    Py_ssize_t len;
    int action;
    /* its first 16 bytes as two words, and masks for a lead shorter than that: most leads are
     * told apart by one or two word compares, without calling memcmp */
    uint64_t head[2], mask[2];
} Lead;

typedef struct {
    Lead leads[MAX_LEADS];
    int count;
    uint64_t by_first[256]; /* bit i: leads[i] starts with this byte */
} LeadTable;

/* TAB_SPACE: bodies after a prefix's "] " (matched at "]" + 2);
 * TAB_TAIL: a window manager's tails, right after the "]" of "[windowSize=N]" (at "]" + 1);
 * TAB_START: bodies at the start of a line (all deferred: unprefixed output is rare). */
static LeadTable TABLES[N_TABLES];
static int configured = 0;

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The lead of table t that buf[at:] starts with (within end), or NULL. */
static inline const Lead *
lead_at(const LeadTable *t, const unsigned char *buf, Py_ssize_t at, Py_ssize_t end)
{
    if (at >= end) {
        return NULL;
    }
    uint64_t bits = t->by_first[buf[at]];
    if (bits == 0) {
        return NULL;
    }
    int words = end - at >= 16;
    uint64_t w0 = words ? load64(buf + at) : 0, w1 = words ? load64(buf + at + 8) : 0;
    for (int i = 0; bits; i++, bits >>= 1) {
        if (!(bits & 1)) {
            continue;
        }
        const Lead *l = &t->leads[i];
        if (end - at < l->len) {
            continue;
        }
        if (words) {
            if (((w0 ^ l->head[0]) & l->mask[0]) || ((w1 ^ l->head[1]) & l->mask[1])) {
                continue;
            }
            if (l->len <= 16 ||
                memcmp(buf + at + 16, l->text + 16, (size_t)(l->len - 16)) == 0) {
                return l;
            }
        }
        else if (memcmp(buf + at, l->text, (size_t)l->len) == 0) {
            return l;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Small matchers: each mirrors one piece of regex syntax, bounded by `end`                     */
/* ------------------------------------------------------------------------------------------ */

static inline int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Result of reading a number: none (the regex fails), a value, or too big (defer). */
enum { NUM_NONE = 0, NUM_OK = 1, NUM_BIG = 2 };

/* \d+ at *p: the longest run of ASCII digits (Python's re: bytes patterns, \d is [0-9]). */
static inline int
read_u64(const unsigned char *buf, Py_ssize_t *p, Py_ssize_t end, uint64_t *out)
{
    Py_ssize_t i = *p;
    uint64_t v = 0;
    int big = 0;
    if (i >= end || !is_digit(buf[i])) {
        return NUM_NONE;
    }
    for (; i < end && is_digit(buf[i]); i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            big = 1;
        }
        else {
            v = v * 10 + d;
        }
    }
    *p = i;
    *out = v;
    return big ? NUM_BIG : NUM_OK;
}

/* -?\d+ at *p. */
static inline int
read_i64(const unsigned char *buf, Py_ssize_t *p, Py_ssize_t end, int64_t *out)
{
    Py_ssize_t i = *p;
    int neg = 0;
    uint64_t v;
    if (i < end && buf[i] == '-') {
        neg = 1;
        i++;
    }
    int r = read_u64(buf, &i, end, &v);
    if (r == NUM_NONE) {
        return r;
    }
    *p = i;
    if (r == NUM_BIG || v > (uint64_t)INT64_MAX) {
        return NUM_BIG;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return NUM_OK;
}

/* A literal at *p; advances past it. */
static inline int
lit(const unsigned char *buf, Py_ssize_t *p, Py_ssize_t end, const char *s, Py_ssize_t n)
{
    if (end - *p < n || memcmp(buf + *p, s, (size_t)n) != 0) {
        return 0;
    }
    *p += n;
    return 1;
}
#define LIT(p, s) lit(buf, (p), end, (s), (Py_ssize_t)(sizeof(s) - 1))

/* All of buf[a:b] are digits, and there is at least one (bytes.isdigit()). */
static inline int
all_digits(const unsigned char *buf, Py_ssize_t a, Py_ssize_t b)
{
    if (a >= b) {
        return 0;
    }
    for (Py_ssize_t i = a; i < b; i++) {
        if (!is_digit(buf[i])) {
            return 0;
        }
    }
    return 1;
}

/* int() of digits known to be short (at most 16 of them). */
static inline uint64_t
small_int(const unsigned char *buf, Py_ssize_t a, Py_ssize_t b)
{
    uint64_t v = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        v = v * 10 + (uint64_t)(buf[i] - '0');
    }
    return v;
}

/* buf.rfind(c, lo, hi), lo >= 0. */
static inline Py_ssize_t
rfind_byte(const unsigned char *buf, unsigned char c, Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t i = hi - 1; i >= lo; i--) {
        if (buf[i] == c) {
            return i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Rank and window, read back from the bytes before a match (parse.py's helpers)              */
/* ------------------------------------------------------------------------------------------ */

/* A rank or window: absent (None), a value, or too big to read here (defer the line). */
typedef struct {
    int state; /* NUM_NONE, NUM_OK, NUM_BIG */
    uint64_t value;
} Num;

static const Num NONE = {NUM_NONE, 0};

/* parse.py _fast_rank(buf, body): rank of a C++ line whose body at `body` follows "[n] " or
 * "[RANK n] " (patterns: the classic "[TensorRT-LLM][DEBUG][n] " and 2026's "[RANK n] "). */
static Num
fast_rank(const unsigned char *buf, Py_ssize_t body)
{
    Num r = NONE;
    if (body < 3 || !is_digit(buf[body - 3]) || buf[body - 2] != ']') {
        return r;
    }
    Py_ssize_t lo = body - 16 > 0 ? body - 16 : 0;
    Py_ssize_t q = rfind_byte(buf, '[', lo, body - 2);
    if (q < 0) {
        return r;
    }
    Py_ssize_t a = q + 1, b = body - 2; /* inner = buf[a:b], at most 13 bytes */
    if (all_digits(buf, a, b)) {
        r.state = NUM_OK;
        r.value = small_int(buf, a, b);
    }
    else if (b - a >= 5 && memcmp(buf + a, "RANK ", 5) == 0 && all_digits(buf, a + 5, b)) {
        r.state = NUM_OK;
        r.value = small_int(buf, a + 5, b);
    }
    return r;
}

/* parse.py _rank(buf, start) for a match at a "]": patterns.RANK_IN_PREFIX searched in
 * buf[line_start:start + 2], the leftmost of
 *   \[(?:RANK |MPI_Rank )(\d+)\]  |  \]\[(\d+)\]   |  \] \[(\d+)\]     (section 1.1, 1.2). */
static Num
prefix_rank(const unsigned char *buf, Py_ssize_t line_start, Py_ssize_t start)
{
    Py_ssize_t endpos = start + 2;
    for (Py_ssize_t p = line_start; p < endpos; p++) {
        Py_ssize_t q = p;
        uint64_t v;
        int r;
        if (buf[p] == '[') {
            q = p + 1;
            if (!lit(buf, &q, endpos, "RANK ", 5) && !lit(buf, &q, endpos, "MPI_Rank ", 9)) {
                continue;
            }
            r = read_u64(buf, &q, endpos, &v);
            if (r == NUM_NONE || !lit(buf, &q, endpos, "]", 1)) {
                continue;
            }
        }
        else if (buf[p] == ']') {
            q = p + 1;
            if (!lit(buf, &q, endpos, "[", 1) && !lit(buf, &q, endpos, " [", 2)) {
                continue;
            }
            r = read_u64(buf, &q, endpos, &v);
            if (r == NUM_NONE || !lit(buf, &q, endpos, "] ", 2)) {
                continue;
            }
        }
        else {
            continue;
        }
        Num out = {r, v};
        return out;
    }
    return NONE;
}

/* parse.py _window for a tail found at a "]": patterns.WINDOW_BEFORE, "\[windowSize=(\d+)\Z",
 * searched in buf[max(0, start - 24):start]. */
static Num
window_before(const unsigned char *buf, Py_ssize_t start)
{
    Py_ssize_t lo = start - 24 > 0 ? start - 24 : 0;
    Py_ssize_t d = start;
    while (d > lo && is_digit(buf[d - 1])) {
        d--;
    }
    /* the digit run is buf[d:start]; "[windowSize=" must end right before it, at or after lo */
    if (d == start || d - 12 < lo || memcmp(buf + d - 12, "[windowSize=", 12) != 0) {
        return NONE;
    }
    Num r = {NUM_OK, small_int(buf, d, start)};
    return r;
}

/* parse.py _lookup_key(buf, start): rank and window of a window manager's line from the "]"
 * that closes "BlockManager[windowSize=N]", reading at most 50 bytes back. */
static void
lookup_key(const unsigned char *buf, Py_ssize_t line_start, Py_ssize_t start, Num *rank,
           Num *window)
{
    Py_ssize_t lo = start - 11 > 0 ? start - 11 : 0;
    Py_ssize_t eq = rfind_byte(buf, '=', lo, start);
    Py_ssize_t body = eq - 23; /* where "BlockManager" starts */
    if (body >= 0 && memcmp(buf + body, "BlockManager[windowSize", 23) == 0 &&
        all_digits(buf, eq + 1, start)) {
        *rank = fast_rank(buf, body);
        window->state = NUM_OK;
        window->value = small_int(buf, eq + 1, start);
        return;
    }
    *rank = prefix_rank(buf, line_start, start);
    *window = NONE;
}

/* ------------------------------------------------------------------------------------------ */
/* Records: what prepare() found, one per evidence line                                       */
/* ------------------------------------------------------------------------------------------ */

enum { R_LOOKUP = 1, R_COPY, R_ADDSEQ, R_RELEASE, R_PREPOP, R_DEFER };

/* Flags: which optional fields are None. */
#define F_NO_RANK 1u
#define F_NO_WINDOW 2u
#define F_NO_CON 4u

typedef struct {
    int32_t kind;
    uint32_t flags;
    int64_t dline; /* newlines between the scan's start and this line */
    uint64_t v[6];
    /*           v0     v1      v2    v3     v4         v5
     * LOOKUP:   rank   window  slot
     * COPY:     rank   offload
     * ADDSEQ:   rank   window  rid   len    pre (i64)  con
     * RELEASE:  rank   window  rid   n
     * PREPOP:   rank   rid     len (i64)    prompt
     * DEFER:    a      b       (lines buf[a:b], b the end of the last one) */
} Rec;

typedef struct {
    Rec *recs;
    Py_ssize_t n, cap;
} RecBuf;

static int
recbuf_push(RecBuf *rb, const Rec *r)
{
    if (rb->n == rb->cap) {
        Py_ssize_t cap = rb->cap ? rb->cap * 2 : 1024;
        Rec *grown = (Rec *)realloc(rb->recs, (size_t)cap * sizeof(Rec));
        if (grown == NULL) {
            return -1;
        }
        rb->recs = grown;
        rb->cap = cap;
    }
    rb->recs[rb->n++] = *r;
    return 0;
}

/* The outcome of a recognizer: the line is evidence handled here, not this alternative, or
 * the line must go to Python. */
enum { M_NO = 0, M_YES = 1, M_DEFER = 2 };

static inline int
set_rank(Rec *r, Num n)
{
    if (n.state == NUM_BIG) {
        return M_DEFER;
    }
    if (n.state == NUM_NONE) {
        r->flags |= F_NO_RANK;
    }
    r->v[0] = n.value;
    return M_YES;
}

static inline int
set_window(Rec *r, Num n)
{
    if (n.state == NUM_NONE) {
        r->flags |= F_NO_WINDOW;
    }
    r->v[1] = n.value;
    return M_YES;
}

/* patterns._add_sequence (section 2.2), after "addSequence: Request ":
 *   (\d+), inputLength (\d+), prepopulatedPromptLen (-?\d+)(?:, numConnectorMatchedTokens (\d+))? */
static int
match_addseq(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    uint64_t rid, len, con;
    int64_t pre;
    int a, b, c;
    if ((a = read_u64(buf, &p, end, &rid)) == NUM_NONE || !LIT(&p, ", inputLength ") ||
        (b = read_u64(buf, &p, end, &len)) == NUM_NONE || !LIT(&p, ", prepopulatedPromptLen ") ||
        (c = read_i64(buf, &p, end, &pre)) == NUM_NONE) {
        return M_NO;
    }
    if (a == NUM_BIG || b == NUM_BIG || c == NUM_BIG) {
        return M_DEFER;
    }
    r->flags |= F_NO_CON;
    if (LIT(&p, ", numConnectorMatchedTokens ")) {
        int d = read_u64(buf, &p, end, &con);
        if (d == NUM_BIG) {
            return M_DEFER;
        }
        if (d == NUM_OK) {
            r->flags &= ~F_NO_CON;
            r->v[5] = con;
        }
    }
    r->kind = R_ADDSEQ;
    r->v[2] = rid;
    r->v[3] = len;
    r->v[4] = (uint64_t)pre;
    return M_YES;
}

/* section 2.2 releaseBlocks, after "releaseBlocks Request ": (\d+), (\d+) blocks stored */
static int
match_release(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    uint64_t rid, n;
    int a, b;
    if ((a = read_u64(buf, &p, end, &rid)) == NUM_NONE || !LIT(&p, ", ") ||
        (b = read_u64(buf, &p, end, &n)) == NUM_NONE || !LIT(&p, " blocks stored")) {
        return M_NO;
    }
    if (a == NUM_BIG || b == NUM_BIG) {
        return M_DEFER;
    }
    r->kind = R_RELEASE;
    r->v[2] = rid;
    r->v[3] = n;
    return M_YES;
}

/* section 2.2 llmRequest.h, after "Setting pre-populated prompt length for request ":
 *   (\d+) to (-?\d+) \(promptLen=(\d+)\) */
static int
match_prepop(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    uint64_t rid, prompt;
    int64_t len;
    int a, b, c;
    if ((a = read_u64(buf, &p, end, &rid)) == NUM_NONE || !LIT(&p, " to ") ||
        (b = read_i64(buf, &p, end, &len)) == NUM_NONE || !LIT(&p, " (promptLen=") ||
        (c = read_u64(buf, &p, end, &prompt)) == NUM_NONE || !LIT(&p, ")")) {
        return M_NO;
    }
    if (a == NUM_BIG || b == NUM_BIG || c == NUM_BIG) {
        return M_DEFER;
    }
    r->kind = R_PREPOP;
    r->v[1] = rid;
    r->v[2] = (uint64_t)len;
    r->v[3] = prompt;
    return M_YES;
}

/* section 2.4, after "copyBlock entered: ": srcId=-?\d+, dstId=-?\d+, isOffload=(true|false) */
static int
match_copy(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    int64_t ignored;
    if (!LIT(&p, "srcId=") || read_i64(buf, &p, end, &ignored) == NUM_NONE ||
        !LIT(&p, ", dstId=") || read_i64(buf, &p, end, &ignored) == NUM_NONE ||
        !LIT(&p, ", isOffload=")) {
        return M_NO;
    }
    /* a too-big id is still a match: its value is not read */
    if (LIT(&p, "true")) {
        r->v[1] = 1;
    }
    else if (LIT(&p, "false")) {
        r->v[1] = 0;
    }
    else {
        return M_NO;
    }
    r->kind = R_COPY;
    return M_YES;
}

/* section 2.2, after "loadOrAllocateBlocks":
 *   (?: for request \d+)? - (Matched full|No match|Reused partially|Copied partially|
 *                            Matched partially)
 * The slot is the outcome's counter in a BlockLookups: matched, partial, copied, missed. */
static int
match_lookup(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    Py_ssize_t q = p;
    uint64_t ignored;
    if (!(LIT(&q, " for request ") && read_u64(buf, &q, end, &ignored) != NUM_NONE)) {
        q = p; /* the optional group did not match */
    }
    if (!LIT(&q, " - ")) {
        return M_NO;
    }
    uint64_t slot;
    if (LIT(&q, "Matched full")) {
        slot = 0;
    }
    else if (LIT(&q, "No match")) {
        slot = 3;
    }
    else if (LIT(&q, "Reused partially")) {
        slot = 1;
    }
    else if (LIT(&q, "Copied partially")) {
        slot = 2;
    }
    else if (LIT(&q, "Matched partially")) {
        slot = 1;
    }
    else {
        return M_NO;
    }
    r->kind = R_LOOKUP;
    r->v[2] = slot;
    return M_YES;
}

/* A hot alternative at the "]" at `at`, its lead ending at `p`: M_YES with *r filled in,
 * M_NO, or M_DEFER. */
static int
recognise(int kind, const unsigned char *buf, Py_ssize_t line_start, Py_ssize_t at,
          Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    int m;
    switch (kind) {
    case K_LOOKUP:
    case K_BARE_LOOKUP:
        if ((m = match_lookup(buf, p, end, r)) != M_YES) {
            return m;
        }
        if (kind == K_LOOKUP) {
            Num rank, window;
            lookup_key(buf, line_start, at, &rank, &window);
            set_window(r, window);
            return set_rank(r, rank);
        }
        set_window(r, NONE);
        return set_rank(r, fast_rank(buf, at + 2));
    case K_COPY:
        if ((m = match_copy(buf, p, end, r)) != M_YES) {
            return m;
        }
        return set_rank(r, fast_rank(buf, at + 2));
    case K_ADDSEQ:
    case K_ADDSEQW:
    case K_BARE_ADDSEQW:
        if ((m = match_addseq(buf, p, end, r)) != M_YES) {
            return m;
        }
        set_window(r, kind == K_BARE_ADDSEQW ? NONE : window_before(buf, at));
        return set_rank(r, prefix_rank(buf, line_start, at));
    case K_RELEASE:
    case K_BARE_RELEASE:
        if ((m = match_release(buf, p, end, r)) != M_YES) {
            return m;
        }
        set_window(r, kind == K_BARE_RELEASE ? NONE : window_before(buf, at));
        return set_rank(r, prefix_rank(buf, line_start, at));
    case K_PREPOP:
        if ((m = match_prepop(buf, p, end, r)) != M_YES) {
            return m;
        }
        return set_rank(r, prefix_rank(buf, line_start, at));
    default:
        return M_DEFER;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The line walk                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Could a body start this line (patterns.LINE_START / FIRST_LINE)? A superset: any line
 * that passes the "not a prefix" look-ahead and starts with a colour code, a lead, or an
 * identifier chain ending in "Error: " / "Exception: " (the traceback's last line). */
static int
line_start_candidate(const unsigned char *buf, Py_ssize_t a, Py_ssize_t end)
{
    if (a >= end) {
        return 0;
    }
    unsigned char c = buf[a];
    /* _NOT_A_PREFIX: (?!\[[T\d]|\d) */
    if (is_digit(c) || (c == '[' && a + 1 < end && (buf[a + 1] == 'T' || is_digit(buf[a + 1])))) {
        return 0;
    }
    if (c == 0x1b) { /* ANSI colour code first: let the regex decide */
        return 1;
    }
    if (lead_at(&TABLES[TAB_START], buf, a, end) != NULL) {
        return 1;
    }
    /* (?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): */
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')) {
        return 0;
    }
    Py_ssize_t i = a;
    while (i < end && ((buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= 'a' && buf[i] <= 'z') ||
                       is_digit(buf[i]) || buf[i] == '_' || buf[i] == '.')) {
        i++;
    }
    if (end - i < 2 || buf[i] != ':' || buf[i + 1] != ' ') {
        return 0;
    }
    return (i - a >= 5 && memcmp(buf + i - 5, "Error", 5) == 0) ||
           (i - a >= 9 && memcmp(buf + i - 9, "Exception", 9) == 0);
}

/* The ERROR alternative's look-behind at the "] " at `at` (patterns._ERROR_AFTER_PREFIX):
 * (?<=[ER]\] ) | (?<=R\]\[\d\] ) | (?<=R\]\[\d\d\] ). It looks before the line, as re does. */
static inline int
error_tag_before(const unsigned char *buf, Py_ssize_t at)
{
    if (at >= 1 && (buf[at - 1] == 'E' || buf[at - 1] == 'R')) {
        return 1;
    }
    if (at >= 4 && is_digit(buf[at - 1]) && buf[at - 2] == '[' && buf[at - 3] == ']' &&
        buf[at - 4] == 'R') {
        return 1;
    }
    if (at >= 5 && is_digit(buf[at - 1]) && is_digit(buf[at - 2]) && buf[at - 3] == '[' &&
        buf[at - 4] == ']' && buf[at - 5] == 'R') {
        return 1;
    }
    return 0;
}

/* The alternatives of table t whose lead is at buf[p:]. */
static inline int
try_lead(const LeadTable *t, const unsigned char *buf, Py_ssize_t line_start, Py_ssize_t at,
         Py_ssize_t p, Py_ssize_t end, Rec *r)
{
    const Lead *l = lead_at(t, buf, p, end);
    if (l == NULL) {
        return M_NO;
    }
    if (l->action == ACT_DEFER) {
        return M_DEFER;
    }
    memset(r, 0, sizeof *r);
    return recognise(l->action, buf, line_start, at, p + l->len, end, r);
}

/* ANCHORED at the "]" at `at`: \](?: (?:<bodies after a prefix>|<ERROR>)|<windowed tails>) */
static int
at_bracket(const unsigned char *buf, Py_ssize_t line_start, Py_ssize_t at, Py_ssize_t end,
           Rec *r)
{
    if (at + 1 >= end) {
        return M_NO;
    }
    if (buf[at + 1] == ' ') {
        if (error_tag_before(buf, at)) {
            return M_DEFER; /* that alternative matches whatever follows: Python decides */
        }
        int m = try_lead(&TABLES[TAB_SPACE], buf, line_start, at, at + 2, end, r);
        if (m != M_NO) {
            return m;
        }
    }
    /* the tails, tried after the bodies: "::..." or the summary's " - " */
    return try_lead(&TABLES[TAB_TAIL], buf, line_start, at, at + 1, end, r);
}

/* The next '\n' or ']' in buf[p:end], or end. */
static inline Py_ssize_t
next_special(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end)
{
#ifdef KV_SSE2
    const __m128i nl = _mm_set1_epi8('\n');
    const __m128i br = _mm_set1_epi8(']');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + p));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, br)));
        if (m) {
            return p + lowest_bit(m);
        }
        p += 16;
    }
#endif
    while (p < end && buf[p] != '\n' && buf[p] != ']') {
        p++;
    }
    return p;
}

static inline Py_ssize_t
line_end(const unsigned char *buf, Py_ssize_t p, Py_ssize_t end)
{
    const unsigned char *nl = (const unsigned char *)memchr(buf + p, '\n', (size_t)(end - p));
    return nl == NULL ? end : (Py_ssize_t)(nl - buf);
}

/* Deferred lines at most this many bytes apart (no hot line between) go to Python as one
 * stretch: a record per deferred line would take far more memory than a log of short lines. */
#define DEFER_GAP 256

/* Walk the lines of buf[start:end]. buf[start] starts a line if at_line_start (a line of a
 * long line's later piece does not). Returns -1 when out of memory. */
static int
walk(const unsigned char *buf, Py_ssize_t start, Py_ssize_t end, int at_line_start, RecBuf *rb,
     int64_t *newlines)
{
    Py_ssize_t pos = start;
    int64_t dline = 0;
    /* where the first line really starts, for the rank read from its whole prefix */
    Py_ssize_t first_start = rfind_byte(buf, '\n', 0, start) + 1;
    while (pos < end) {
        Py_ssize_t ls = pos == start ? first_start : pos, le;
        Rec r;
        int m = M_NO;
        memset(&r, 0, sizeof r);
        if ((pos > start || at_line_start) && line_start_candidate(buf, pos, end)) {
            m = M_DEFER;
            le = line_end(buf, pos, end);
        }
        else {
            Py_ssize_t p = pos;
            for (;;) {
                p = next_special(buf, p, end);
                if (p >= end || buf[p] == '\n') {
                    le = p;
                    break;
                }
                m = at_bracket(buf, ls, p, end, &r);
                if (m != M_NO) {
                    le = line_end(buf, p, end);
                    break;
                }
                p++;
            }
        }
        if (m == M_DEFER && rb->n > 0 && rb->recs[rb->n - 1].kind == R_DEFER &&
            pos - (Py_ssize_t)rb->recs[rb->n - 1].v[1] <= DEFER_GAP) {
            /* close behind the last deferred stretch, nothing hot between: one stretch */
            rb->recs[rb->n - 1].v[1] = (uint64_t)le;
            m = M_NO;
        }
        else if (m == M_DEFER) {
            memset(&r, 0, sizeof r);
            r.kind = R_DEFER;
            r.v[0] = (uint64_t)pos;
            r.v[1] = (uint64_t)le;
        }
        if (m != M_NO) {
            r.dline = dline;
            if (recbuf_push(rb, &r) < 0) {
                return -1;
            }
        }
        if (le >= end) {
            break;
        }
        pos = le + 1;
        dline++;
    }
    *newlines = dline;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Prepared: the records of one stretch, made without the GIL                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD RecBuf rb;
    int64_t newlines;
    Py_ssize_t start, end;
} Prepared;

static void
Prepared_dealloc(Prepared *self)
{
    free(self->rb.recs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Prepared_newlines(Prepared *self, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong(self->newlines);
}

static PyObject *
Prepared_records(Prepared *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->rb.n);
}

static PyGetSetDef Prepared_getset[] = {
    {"newlines", (getter)Prepared_newlines, NULL, "newlines in the stretch", NULL},
    {"records", (getter)Prepared_records, NULL, "evidence lines found (deferred ones too)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PreparedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kvverify.evidence._scan.Prepared",
    .tp_basicsize = sizeof(Prepared),
    .tp_dealloc = (destructor)Prepared_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The evidence lines of buf[start:end], found by prepare().",
    .tp_getset = Prepared_getset,
};

static PyObject *
do_prepare(Py_buffer *view, Py_ssize_t start, Py_ssize_t end, int at_line_start)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_scan.configure() was not called");
        return NULL;
    }
    if (start < 0 || end > view->len || start > end) {
        PyErr_SetString(PyExc_ValueError, "start/end out of range");
        return NULL;
    }
    Prepared *pr = PyObject_New(Prepared, &PreparedType);
    if (pr == NULL) {
        return NULL;
    }
    memset(&pr->rb, 0, sizeof pr->rb);
    pr->newlines = 0;
    pr->start = start;
    pr->end = end;
    int failed;
    Py_BEGIN_ALLOW_THREADS;
    failed = walk((const unsigned char *)view->buf, start, end, at_line_start, &pr->rb,
                  &pr->newlines);
    Py_END_ALLOW_THREADS;
    if (failed) {
        Py_DECREF(pr);
        return PyErr_NoMemory();
    }
    return (PyObject *)pr;
}

static PyObject *
prepare(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer view;
    Py_ssize_t start, end;
    int at_line_start;
    if (!PyArg_ParseTuple(args, "y*nnp:prepare", &view, &start, &end, &at_line_start)) {
        return NULL;
    }
    PyObject *r = do_prepare(&view, start, end, at_line_start);
    PyBuffer_Release(&view);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Events: built straight into the slots of the frozen dataclasses of events.py               */
/* ------------------------------------------------------------------------------------------ */

enum { C_LOOKUPS = 0, C_COPIES, C_ADDSEQ, C_RELEASE, C_PREPOP, N_CLASSES };

#define MAX_FIELDS 10

typedef struct {
    PyTypeObject *type;
    int nfields;
    int fast;                      /* fill the slots directly (else call the class) */
    Py_ssize_t offset[MAX_FIELDS]; /* of each field's slot, in field order */
} EventClass;

static EventClass CLASSES[N_CLASSES];

/* Check that `cls` is a slotted class with no __new__ of its own and that each field is a
 * plain object slot; then events are made as object.__new__(cls) with the slots filled in,
 * what the generated __init__ of a frozen slotted dataclass does, at a fraction of its
 * cost. Anything else (a __post_init__, a property) and the class is called instead. */
static int
setup_class(EventClass *ec, PyObject *cls, PyObject *fields)
{
    if (!PyType_Check(cls) || !PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) > MAX_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "configure: (class, field names) expected");
        return -1;
    }
    PyTypeObject *t = (PyTypeObject *)cls;
    Py_XDECREF(ec->type);
    Py_INCREF(cls);
    ec->type = t;
    ec->nfields = (int)PyTuple_GET_SIZE(fields);
    ec->fast = t->tp_new == PyBaseObject_Type.tp_new && t->tp_alloc == PyType_GenericAlloc;
    PyObject *post_init = PyObject_GetAttrString(cls, "__post_init__");
    if (post_init != NULL) {
        ec->fast = 0;
        Py_DECREF(post_init);
    }
    else {
        PyErr_Clear();
    }
    for (int i = 0; i < ec->nfields && ec->fast; i++) {
        PyObject *descr = PyDict_GetItemWithError(t->tp_dict, PyTuple_GET_ITEM(fields, i));
        if (descr == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            ec->fast = 0;
            break;
        }
        if (Py_TYPE(descr) != &PyMemberDescr_Type) {
            ec->fast = 0;
            break;
        }
        PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
        if (def->type != T_OBJECT_EX || (def->flags & READONLY)) {
            ec->fast = 0;
            break;
        }
        ec->offset[i] = def->offset;
    }
    return 0;
}

/* A new event from `n` new references (stolen, also on failure). */
static PyObject *
make_event(int which, PyObject **args, int n)
{
    EventClass *ec = &CLASSES[which];
    PyObject *o = NULL;
    for (int i = 0; i < n; i++) {
        if (args[i] == NULL) {
            goto done;
        }
    }
    if (ec->fast) {
        o = ec->type->tp_alloc(ec->type, 0);
        if (o != NULL) {
            for (int i = 0; i < n; i++) {
                *(PyObject **)((char *)o + ec->offset[i]) = args[i];
                args[i] = NULL;
            }
            /* Its fields are ints and None: it can be in no reference cycle, so the cyclic
             * GC need not track it (as CPython does for tuples of atoms). Millions of them
             * otherwise make every collection slower. */
            if (PyObject_IS_GC(o)) {
                PyObject_GC_UnTrack(o);
            }
        }
    }
    else {
        o = PyObject_Vectorcall((PyObject *)ec->type, args, (size_t)n, NULL);
    }
done:
    for (int i = 0; i < n; i++) {
        Py_XDECREF(args[i]);
    }
    return o;
}

static inline PyObject *
opt_u64(int none, uint64_t v)
{
    if (none) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(v);
}

/* ------------------------------------------------------------------------------------------ */
/* Runs: the coalescing state and the output list (parse.py's _Runs, in C)                    */
/* ------------------------------------------------------------------------------------------ */

/* A run started from a record also keeps its key as the record has it (raw), so that the
 * lines that continue it are compared without making Python ints; a run started from Python
 * (a deferred line) is compared as Python objects. */
typedef struct {
    int active;
    int64_t line;
    PyObject *rank;   /* None or int */
    PyObject *window; /* None or int */
    int64_t count[4]; /* matched, partial, copied, missed */
    int64_t offloads, onboards; /* the copyBlock lines of its rank among them */
    int raw;          /* the raw key below is valid */
    uint32_t none;    /* F_NO_RANK | F_NO_WINDOW */
    uint64_t raw_rank, raw_window;
} LookupRun;

typedef struct {
    int active;
    int64_t line;
    PyObject *rank;
    int64_t offloads, onboards;
    int raw;
    uint32_t none; /* F_NO_RANK */
    uint64_t raw_rank;
} CopyRun;

typedef struct {
    PyObject_HEAD PyObject *out; /* list of events */
    LookupRun lookups;
    CopyRun copies;
} Runs;

static int
Runs_init(Runs *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Runs", kwlist)) {
        return -1;
    }
    Py_XSETREF(self->out, PyList_New(0));
    return self->out == NULL ? -1 : 0;
}

static int
Runs_traverse(Runs *self, visitproc visit, void *arg)
{
    Py_VISIT(self->out);
    Py_VISIT(self->lookups.rank);
    Py_VISIT(self->lookups.window);
    Py_VISIT(self->copies.rank);
    return 0;
}

static int
Runs_clear(Runs *self)
{
    Py_CLEAR(self->out);
    Py_CLEAR(self->lookups.rank);
    Py_CLEAR(self->lookups.window);
    Py_CLEAR(self->copies.rank);
    self->lookups.active = self->copies.active = 0;
    return 0;
}

static void
Runs_dealloc(Runs *self)
{
    PyObject_GC_UnTrack(self);
    Runs_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
append_steal(Runs *self, PyObject *event)
{
    if (event == NULL) {
        return -1;
    }
    int r = PyList_Append(self->out, event);
    Py_DECREF(event);
    return r;
}

static int
end_lookups(Runs *self)
{
    LookupRun *run = &self->lookups;
    if (!run->active) {
        return 0;
    }
    run->active = 0;
    PyObject *args[9] = {
        PyLong_FromLongLong(run->line),     run->rank,
        run->window,                        PyLong_FromLongLong(run->count[0]),
        PyLong_FromLongLong(run->count[1]), PyLong_FromLongLong(run->count[2]),
        PyLong_FromLongLong(run->count[3]), PyLong_FromLongLong(run->offloads),
        PyLong_FromLongLong(run->onboards),
    };
    run->rank = run->window = NULL; /* handed over */
    return append_steal(self, make_event(C_LOOKUPS, args, 9));
}

static int
end_copies(Runs *self)
{
    CopyRun *run = &self->copies;
    if (!run->active) {
        return 0;
    }
    run->active = 0;
    PyObject *args[4] = {
        PyLong_FromLongLong(run->line),
        run->rank,
        PyLong_FromLongLong(run->offloads),
        PyLong_FromLongLong(run->onboards),
    };
    run->rank = NULL;
    return append_steal(self, make_event(C_COPIES, args, 4));
}

static inline int
flush(Runs *self)
{
    if (end_lookups(self) < 0) {
        return -1;
    }
    return end_copies(self);
}

/* Python's == for the None-or-int rank and window of a run. */
static inline int
same(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    if (a == Py_None || b == Py_None) {
        return 0;
    }
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

/* A lookup line: continue the run of the same rank and window; else take over the copies of
 * the same rank going on (the run starts at their first line); else start one. At most one
 * of the two runs is active. Steals rank and window. 1: a new run (its raw key is not set),
 * 0: the run went on, -1: an error. */
static int
add_lookup(Runs *self, int64_t line, PyObject *rank, PyObject *window, int slot)
{
    LookupRun *run = &self->lookups;
    CopyRun *copies = &self->copies;
    if (rank == NULL || window == NULL) {
        goto fail;
    }
    int continues = run->active;
    if (continues && (continues = same(run->rank, rank)) == 1) {
        continues = same(run->window, window);
    }
    if (continues < 0) {
        goto fail;
    }
    if (!continues) {
        int takes = copies->active ? same(copies->rank, rank) : 0;
        if (takes < 0) {
            goto fail;
        }
        int64_t start = line, offloads = 0, onboards = 0;
        if (takes) {
            start = copies->line;
            offloads = copies->offloads;
            onboards = copies->onboards;
            copies->active = 0;
            Py_CLEAR(copies->rank);
        }
        else if (flush(self) < 0) {
            goto fail;
        }
        run->active = 1;
        run->raw = 0;
        run->line = start;
        run->rank = rank;
        run->window = window;
        memset(run->count, 0, sizeof run->count);
        run->offloads = offloads;
        run->onboards = onboards;
        run->count[slot]++;
        return 1;
    }
    Py_DECREF(rank);
    Py_DECREF(window);
    run->count[slot]++;
    return 0;
fail:
    Py_XDECREF(rank);
    Py_XDECREF(window);
    return -1;
}

static inline void
count_copy(int64_t *offloads, int64_t *onboards, int offload)
{
    if (offload) {
        (*offloads)++;
    }
    else {
        (*onboards)++;
    }
}

/* A copyBlock line: counted in the run of lookups of the same rank; else it ends that run
 * and continues the copies of the same rank, or starts them. Steals rank. 1: a new run of
 * copies (its raw key is not set), 0: counted in a run going on, -1: an error. */
static int
add_copy(Runs *self, int64_t line, PyObject *rank, int offload)
{
    CopyRun *run = &self->copies;
    LookupRun *lookups = &self->lookups;
    if (rank == NULL) {
        goto fail;
    }
    if (lookups->active) {
        int within = same(lookups->rank, rank);
        if (within < 0) {
            goto fail;
        }
        if (within) {
            Py_DECREF(rank);
            count_copy(&lookups->offloads, &lookups->onboards, offload);
            return 0;
        }
        if (end_lookups(self) < 0) {
            goto fail;
        }
    }
    int continues = run->active ? same(run->rank, rank) : 0;
    if (continues < 0) {
        goto fail;
    }
    if (!continues) {
        if (end_copies(self) < 0) {
            goto fail;
        }
        run->active = 1;
        run->raw = 0;
        run->line = line;
        run->rank = rank;
        run->offloads = run->onboards = 0;
        count_copy(&run->offloads, &run->onboards, offload);
        return 1;
    }
    Py_DECREF(rank);
    count_copy(&run->offloads, &run->onboards, offload);
    return 0;
fail:
    Py_XDECREF(rank);
    return -1;
}

static PyObject *
Runs_lookup(Runs *self, PyObject *args)
{
    long long line;
    PyObject *rank, *window;
    int slot;
    if (!PyArg_ParseTuple(args, "LOOi:lookup", &line, &rank, &window, &slot)) {
        return NULL;
    }
    if (slot < 0 || slot > 3) {
        PyErr_SetString(PyExc_ValueError, "slot must be 0..3");
        return NULL;
    }
    Py_INCREF(rank);
    Py_INCREF(window);
    if (add_lookup(self, line, rank, window, slot) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Runs_copy(Runs *self, PyObject *args)
{
    long long line;
    PyObject *rank;
    int offload;
    if (!PyArg_ParseTuple(args, "LOp:copy", &line, &rank, &offload)) {
        return NULL;
    }
    Py_INCREF(rank);
    if (add_copy(self, line, rank, offload) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Runs_flush(Runs *self, PyObject *unused)
{
    (void)unused;
    if (flush(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Runs_emit(Runs *self, PyObject *event)
{
    if (flush(self) < 0 || PyList_Append(self->out, event) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Runs_take(Runs *self, PyObject *unused)
{
    (void)unused;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL) {
        return NULL;
    }
    PyObject *out = self->out;
    self->out = fresh;
    return out;
}

/* A lookup line from a record: add_lookup, comparing raw keys where it can. */
static int
replay_lookup(Runs *self, int64_t line, const Rec *r)
{
    LookupRun *run = &self->lookups;
    uint32_t none = r->flags & (F_NO_RANK | F_NO_WINDOW);
    int slot = (int)r->v[2];
    if (run->active && run->raw && run->none == none &&
        ((none & F_NO_RANK) || run->raw_rank == r->v[0]) &&
        ((none & F_NO_WINDOW) || run->raw_window == r->v[1])) {
        run->count[slot]++;
        return 0;
    }
    /* Otherwise compared as Python objects: a run started from Python (a deferred line) goes
     * on without a raw key; a new run gets one. */
    int rc = add_lookup(self, line, opt_u64((none & F_NO_RANK) != 0, r->v[0]),
                        opt_u64((none & F_NO_WINDOW) != 0, r->v[1]), slot);
    if (rc <= 0) {
        return rc;
    }
    run->raw = 1;
    run->none = none;
    run->raw_rank = r->v[0];
    run->raw_window = r->v[1];
    return 0;
}

/* A copy line from a record: add_copy, comparing raw keys where it can. */
static int
replay_copy(Runs *self, int64_t line, const Rec *r)
{
    CopyRun *run = &self->copies;
    LookupRun *lookups = &self->lookups;
    uint32_t none = r->flags & F_NO_RANK;
    int no_rank = none != 0;
    int offload = (int)r->v[1];
    if (lookups->active && lookups->raw && (lookups->none & F_NO_RANK) == none &&
        (none || lookups->raw_rank == r->v[0])) {
        count_copy(&lookups->offloads, &lookups->onboards, offload);
        return 0;
    }
    if (!lookups->active && run->active && run->raw && run->none == none &&
        (none || run->raw_rank == r->v[0])) {
        count_copy(&run->offloads, &run->onboards, offload);
        return 0;
    }
    int rc = add_copy(self, line, opt_u64(no_rank, r->v[0]), offload);
    if (rc <= 0) {
        return rc;
    }
    run->raw = 1; /* a new run of copies */
    run->none = none;
    run->raw_rank = r->v[0];
    return 0;
}

/* Turn prepared records into events; `line` is the number of the stretch's first line.
 * Deferred lines go to deferred(buf, a, b, line). */
static int
replay(Runs *self, Prepared *pr, PyObject *bufobj, int64_t line, PyObject *deferred)
{
    for (Py_ssize_t i = 0; i < pr->rb.n; i++) {
        const Rec *r = &pr->rb.recs[i];
        int64_t at = line + r->dline;
        int no_rank = (r->flags & F_NO_RANK) != 0;
        int no_window = (r->flags & F_NO_WINDOW) != 0;
        int rc = 0;
        switch (r->kind) {
        case R_LOOKUP:
            rc = replay_lookup(self, at, r);
            break;
        case R_COPY:
            rc = replay_copy(self, at, r);
            break;
        case R_ADDSEQ: {
            if (flush(self) < 0) {
                return -1;
            }
            PyObject *args[7] = {
                PyLong_FromLongLong(at),
                opt_u64(no_rank, r->v[0]),
                opt_u64(no_window, r->v[1]),
                PyLong_FromUnsignedLongLong(r->v[2]),
                PyLong_FromUnsignedLongLong(r->v[3]),
                PyLong_FromLongLong((int64_t)r->v[4]),
                opt_u64((r->flags & F_NO_CON) != 0, r->v[5]),
            };
            rc = append_steal(self, make_event(C_ADDSEQ, args, 7));
            break;
        }
        case R_RELEASE: {
            if (flush(self) < 0) {
                return -1;
            }
            PyObject *args[5] = {
                PyLong_FromLongLong(at),
                opt_u64(no_rank, r->v[0]),
                opt_u64(no_window, r->v[1]),
                PyLong_FromUnsignedLongLong(r->v[2]),
                PyLong_FromUnsignedLongLong(r->v[3]),
            };
            rc = append_steal(self, make_event(C_RELEASE, args, 5));
            break;
        }
        case R_PREPOP: {
            if (flush(self) < 0) {
                return -1;
            }
            PyObject *args[5] = {
                PyLong_FromLongLong(at),
                opt_u64(no_rank, r->v[0]),
                PyLong_FromUnsignedLongLong(r->v[1]),
                PyLong_FromLongLong((int64_t)r->v[2]),
                PyLong_FromUnsignedLongLong(r->v[3]),
            };
            rc = append_steal(self, make_event(C_PREPOP, args, 5));
            break;
        }
        case R_DEFER: {
            PyObject *res = PyObject_CallFunction(deferred, "OnnL", bufobj, (Py_ssize_t)r->v[0],
                                                  (Py_ssize_t)r->v[1], (long long)at);
            if (res == NULL) {
                return -1;
            }
            Py_DECREF(res);
            break;
        }
        default:
            PyErr_SetString(PyExc_SystemError, "bad record");
            return -1;
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
Runs_replay(Runs *self, PyObject *args)
{
    PyObject *prepared, *bufobj, *deferred;
    long long line;
    if (!PyArg_ParseTuple(args, "O!OLO:replay", &PreparedType, &prepared, &bufobj, &line,
                          &deferred)) {
        return NULL;
    }
    Prepared *pr = (Prepared *)prepared;
    if (replay(self, pr, bufobj, line, deferred) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(line + pr->newlines);
}

static PyObject *
Runs_scan(Runs *self, PyObject *args)
{
    PyObject *bufobj, *deferred;
    Py_ssize_t start, end;
    int at_line_start;
    long long line;
    if (!PyArg_ParseTuple(args, "OnnpLO:scan", &bufobj, &start, &end, &at_line_start, &line,
                          &deferred)) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Prepared *pr = (Prepared *)do_prepare(&view, start, end, at_line_start);
    PyObject *result = NULL;
    if (pr != NULL) {
        if (replay(self, pr, bufobj, line, deferred) == 0) {
            result = PyLong_FromLongLong(line + pr->newlines);
        }
        Py_DECREF(pr);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef Runs_methods[] = {
    {"lookup", (PyCFunction)Runs_lookup, METH_VARARGS,
     "lookup(line, rank, window, slot): a loadOrAllocateBlocks line; slot 0..3 = matched, "
     "partial, copied, missed"},
    {"copy", (PyCFunction)Runs_copy, METH_VARARGS,
     "copy(line, rank, offload): a copyBlock line"},
    {"flush", (PyCFunction)Runs_flush, METH_NOARGS, "end the current run"},
    {"emit", (PyCFunction)Runs_emit, METH_O, "end the current run, then append the event"},
    {"take", (PyCFunction)Runs_take, METH_NOARGS, "the events so far (and start a new list)"},
    {"replay", (PyCFunction)Runs_replay, METH_VARARGS,
     "replay(prepared, buf, line, deferred) -> line after: the events of prepared records"},
    {"scan", (PyCFunction)Runs_scan, METH_VARARGS,
     "scan(buf, start, end, at_line_start, line, deferred) -> line after: prepare + replay"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RunsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kvverify.evidence._scan.Runs",
    .tp_basicsize = sizeof(Runs),
    .tp_dealloc = (destructor)Runs_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Runs of per-block lines being coalesced, and the events made so far.",
    .tp_traverse = (traverseproc)Runs_traverse,
    .tp_clear = (inquiry)Runs_clear,
    .tp_methods = Runs_methods,
    .tp_init = (initproc)Runs_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------------------------------ */
/* configure(): the leads and the event classes, from Python                                  */
/* ------------------------------------------------------------------------------------------ */

static int
fill_table(LeadTable *t, int which, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "configure: a sequence of (lead, kind) expected");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > MAX_LEADS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "configure: too many leads");
        return -1;
    }
    memset(t, 0, sizeof *t);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *lead, *kind;
        Py_ssize_t len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "y#s", &lead, &len, &kind)) {
            Py_DECREF(fast);
            return -1;
        }
        if (len < 1 || len > MAX_LEAD_LEN || memchr(lead, '\n', (size_t)len) != NULL) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "configure: bad lead");
            return -1;
        }
        Lead *l = &t->leads[i];
        memset(l, 0, sizeof *l);
        memcpy(l->text, lead, (size_t)len);
        l->len = len;
        unsigned char ones[16];
        memset(ones, 0, sizeof ones);
        memset(ones, 0xff, (size_t)(len < 16 ? len : 16));
        l->head[0] = load64(l->text);
        l->head[1] = load64(l->text + 8);
        l->mask[0] = load64(ones);
        l->mask[1] = load64(ones + 8);
        l->action = ACT_DEFER;
        for (int k = 1; k < N_KINDS; k++) {
            if (strcmp(kind, HOT[k].kind) == 0 && HOT[k].table == which &&
                (size_t)len == strlen(HOT[k].lead) && memcmp(lead, HOT[k].lead, (size_t)len) == 0) {
                l->action = k;
            }
        }
        t->by_first[(unsigned char)lead[0]] |= (uint64_t)1 << i;
    }
    t->count = (int)n;
    Py_DECREF(fast);
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *tables[N_TABLES], *classes;
    if (!PyArg_ParseTuple(args, "OOOO:configure", &tables[TAB_SPACE], &tables[TAB_TAIL],
                          &tables[TAB_START], &classes)) {
        return NULL;
    }
    configured = 0;
    for (int t = 0; t < N_TABLES; t++) {
        if (fill_table(&TABLES[t], t, tables[t]) < 0) {
            return NULL;
        }
    }
    PyObject *fast = PySequence_Fast(classes, "configure: (class, fields) pairs expected");
    if (fast == NULL) {
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(fast) != N_CLASSES) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "configure: BlockLookups, BlockCopies, AddSequence, "
                                          "ReleaseBlocks, PrepopulatedLength expected");
        return NULL;
    }
    for (int i = 0; i < N_CLASSES; i++) {
        PyObject *cls, *fields;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "OO", &cls, &fields) ||
            setup_class(&CLASSES[i], cls, fields) < 0) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    configured = 1;
    /* the hot kinds in use, and whether events are made without calling their class */
    PyObject *hot = PyList_New(0);
    if (hot == NULL) {
        return NULL;
    }
    for (int t = 0; t < N_TABLES; t++) {
        for (int i = 0; i < TABLES[t].count; i++) {
            int k = TABLES[t].leads[i].action;
            if (k != ACT_DEFER) {
                PyObject *name = PyUnicode_FromString(HOT[k].kind);
                if (name == NULL || PyList_Append(hot, name) < 0) {
                    Py_XDECREF(name);
                    Py_DECREF(hot);
                    return NULL;
                }
                Py_DECREF(name);
            }
        }
    }
    int all_fast = 1;
    for (int i = 0; i < N_CLASSES; i++) {
        all_fast = all_fast && CLASSES[i].fast;
    }
    return Py_BuildValue("(NO)", hot, all_fast ? Py_True : Py_False);
}

static PyObject *
hot_kinds(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *out = PyTuple_New(N_KINDS - 1);
    if (out == NULL) {
        return NULL;
    }
    for (int k = 1; k < N_KINDS; k++) {
        PyObject *item = Py_BuildValue("(siy)", HOT[k].kind, HOT[k].table, HOT[k].lead);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k - 1, item);
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(space_leads, tail_leads, line_start_leads, classes) -> (hot kinds, fast)"},
    {"prepare", prepare, METH_VARARGS,
     "prepare(buf, start, end, at_line_start) -> Prepared (runs without the GIL)"},
    {"hot_kinds", hot_kinds, METH_NOARGS,
     "the alternatives recognised natively: (kind, table, lead), table 0 = after '] ', "
     "1 = right after ']', 2 = line start"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvverify.evidence._scan",
    .m_doc = "The native path of kvverify's log parser (see kvverify/evidence/parse.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    if (PyType_Ready(&PreparedType) < 0 || PyType_Ready(&RunsType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&PreparedType);
    if (PyModule_AddObject(m, "Prepared", (PyObject *)&PreparedType) < 0) {
        Py_DECREF(&PreparedType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RunsType);
    if (PyModule_AddObject(m, "Runs", (PyObject *)&RunsType) < 0) {
        Py_DECREF(&RunsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
