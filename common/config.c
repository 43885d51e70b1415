// config.c — `key = value` config files (docs/formats.md), checked against key tables.
// Errors are user errors (a bad file, a typo): they come back as text "FILE:LINE: key 'k': ..." and
// the caller decides what to do. Bad key tables are programming errors: those are FATAL.
#define _XOPEN_SOURCE 700 // realpath (XSI), strdup
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CFG_MAX_INCLUDE_DEPTH 8 // includes nested below the top file
#define CFG_PATH_MAX 4096

typedef struct {
    const CfgTable *t;
    int nt;
    char *err;
    size_t errlen;
    // the files being read, outermost first: display names for messages and real paths for cycles
    int depth;
    char *chain_name[CFG_MAX_INCLUDE_DEPTH + 1];
    char *chain_real[CFG_MAX_INCLUDE_DEPTH + 1]; // NULL for in-memory text
} Parser;

static int fail(Parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Parser *p, const char *fmt, ...) {
    if (p->err && p->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// ----------------------------------------------------------------------------------------------
// key tables

static void check_tables(const CfgTable *t, int nt) {
    for (int i = 0; i < nt; i++) {
        if (t[i].n > 0 && (!t[i].keys || !t[i].dst)) FATAL("config table %d has no keys or no destination", i);
        for (int j = 0; j < t[i].n; j++) {
            const CfgKey *k = &t[i].keys[j];
            if (!k->name || !k->name[0]) FATAL("config table %d, key %d has no name", i, j);
            if (strcmp(k->name, "include") == 0) FATAL("config key name 'include' is reserved for includes");
            if (k->type != CFG_INT && k->type != CFG_FLOAT && k->type != CFG_BOOL && k->type != CFG_STRING)
                FATAL("config key '%s' has an unknown type %d", k->name, (int)k->type);
            // a key must be in exactly one table, or a value would land in one struct and not the other
            for (int i2 = i; i2 < nt; i2++)
                for (int j2 = (i2 == i ? j + 1 : 0); j2 < t[i2].n; j2++)
                    if (t[i2].keys[j2].name && strcmp(k->name, t[i2].keys[j2].name) == 0)
                        FATAL("config key '%s' is declared twice (tables %d and %d): a key must be in exactly one",
                              k->name, i, i2);
        }
    }
}

static const CfgKey *find_key(const CfgTable *t, int nt, const char *name, void **dst) {
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++)
            if (strcmp(t[i].keys[j].name, name) == 0) {
                *dst = t[i].dst;
                return &t[i].keys[j];
            }
    return NULL;
}

// Levenshtein distance, for "did you mean" (names longer than 63 bytes are never suggested).
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return INT_MAX;
    int prev[64], cur[64];
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (nb + 1));
    }
    return prev[nb];
}

static const char *suggest(const CfgTable *t, int nt, const char *name) {
    const char *best = NULL;
    int best_d = 3; // suggest only within distance 2
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            int d = edit_distance(name, t[i].keys[j].name);
            if (d < best_d && d < (int)strlen(name)) { // a distance as long as the name is no hint
                best_d = d;
                best = t[i].keys[j].name;
            }
        }
    return best;
}

// ----------------------------------------------------------------------------------------------
// values

static int equals_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

// Parses `v` for key k and stores it at dst + k->offset; on error writes what was expected into why.
static int parse_value(const CfgKey *k, const char *v, void *dst, char *why, size_t whylen) {
    char *slot = (char *)dst + k->offset;
    switch (k->type) {
    case CFG_INT: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (end == v || *end != '\0') {
            snprintf(why, whylen, "expected an integer, got '%s'", v);
            return -1;
        }
        if (errno == ERANGE || x < INT_MIN || x > INT_MAX) {
            snprintf(why, whylen, "integer '%s' does not fit in an int", v);
            return -1;
        }
        if ((double)x < k->min || (double)x > k->max) {
            snprintf(why, whylen, "value %ld out of range [%.15g, %.15g]", x, k->min, k->max);
            return -1;
        }
        int iv = (int)x;
        memcpy(slot, &iv, sizeof iv);
        return 0;
    }
    case CFG_FLOAT: {
        char *end;
        double x = strtod(v, &end); // underflow to 0 or a denormal is accepted
        if (end == v || *end != '\0') {
            snprintf(why, whylen, "expected a number, got '%s'", v);
            return -1;
        }
        if (!isfinite(x)) {
            snprintf(why, whylen, "expected a finite number, got '%s'", v);
            return -1;
        }
        if (x < k->min || x > k->max) {
            snprintf(why, whylen, "value %s out of range [%.15g, %.15g]", v, k->min, k->max);
            return -1;
        }
        memcpy(slot, &x, sizeof x);
        return 0;
    }
    case CFG_BOOL: {
        int b;
        if (equals_nocase(v, "true") || equals_nocase(v, "yes") || strcmp(v, "1") == 0) {
            b = 1;
        } else if (equals_nocase(v, "false") || equals_nocase(v, "no") || strcmp(v, "0") == 0) {
            b = 0;
        } else {
            snprintf(why, whylen, "expected true/false/1/0/yes/no, got '%s'", v);
            return -1;
        }
        memcpy(slot, &b, sizeof b);
        return 0;
    }
    case CFG_STRING: {
        size_t len = strlen(v);
        if (len > CFG_STR_MAX - 1) {
            snprintf(why, whylen, "string of %zu bytes is too long (at most %d)", len, CFG_STR_MAX - 1);
            return -1;
        }
        memcpy(slot, v, len + 1);
        return 0;
    }
    }
    snprintf(why, whylen, "unknown key type");
    return -1;
}

// Canonical text of a key's current value (buf of at least CFG_STR_MAX + 32 bytes).
static void format_value(const CfgKey *k, const void *dst, char *buf, size_t n) {
    const char *slot = (const char *)dst + k->offset;
    int iv;
    double dv;
    switch (k->type) {
    case CFG_INT:
        memcpy(&iv, slot, sizeof iv);
        snprintf(buf, n, "%d", iv);
        return;
    case CFG_FLOAT:
        memcpy(&dv, slot, sizeof dv);
        snprintf(buf, n, "%.17g", dv); // 17 digits: parses back to the same double
        return;
    case CFG_BOOL:
        memcpy(&iv, slot, sizeof iv);
        snprintf(buf, n, "%s", iv ? "true" : "false");
        return;
    case CFG_STRING: {
        const char *nul = memchr(slot, '\0', CFG_STR_MAX);
        int len = nul ? (int)(nul - slot) : CFG_STR_MAX - 1; // never read past the field
        snprintf(buf, n, "%.*s", len, slot);
        return;
    }
    }
    buf[0] = '\0';
}

// ----------------------------------------------------------------------------------------------
// text

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static int valid_key_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return 0;
    return 1;
}

static int load_path(Parser *p, const char *path, const char *loc, const char *rel);

// One assignment; loc is "file:line" (or the origin alone), dir resolves includes.
static int assign(Parser *p, const char *loc, const char *dir, const char *key, const char *val) {
    if (strcmp(key, "include") == 0) {
        if (!*val) return fail(p, "%s: include: expected a file name", loc);
        char path[CFG_PATH_MAX];
        size_t nd = val[0] == '/' ? 0 : strlen(dir);
        if (nd + strlen(val) >= sizeof path) return fail(p, "%s: include '%s': path too long", loc, val);
        memcpy(path, dir, nd);
        memcpy(path + nd, val, strlen(val) + 1);
        return load_path(p, path, loc, val);
    }
    void *dst = NULL;
    const CfgKey *k = find_key(p->t, p->nt, key, &dst);
    if (!k) {
        const char *s = suggest(p->t, p->nt, key);
        if (s) return fail(p, "%s: unknown key '%s' (did you mean '%s'?)", loc, key, s);
        return fail(p, "%s: unknown key '%s'", loc, key);
    }
    char why[512];
    if (parse_value(k, val, dst, why, sizeof why) != 0) return fail(p, "%s: key '%s': %s", loc, key, why);
    return 0;
}

// Parses `text` (modified in place) line by line; name is used in messages.
static int parse_text(Parser *p, char *text, const char *name, const char *dir) {
    int lineno = 0;
    char *s = text;
    for (;;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        lineno++;
        char *hash = strchr(s, '#'); // a comment runs to the end of the line, values included
        if (hash) *hash = '\0';
        char *line = trim(s);
        if (*line) {
            char loc[CFG_PATH_MAX + 32];
            snprintf(loc, sizeof loc, "%s:%d", name, lineno);
            char *eq = strchr(line, '=');
            if (!eq) return fail(p, "%s: expected 'key = value', got '%s'", loc, line);
            *eq = '\0';
            char *key = trim(line);
            char *val = trim(eq + 1);
            if (!valid_key_name(key)) return fail(p, "%s: expected 'key = value', got bad key '%s'", loc, key);
            if (assign(p, loc, dir, key, val) != 0) return -1;
        }
        if (!nl) return 0;
        s = nl + 1;
    }
}

// Reads a whole stream into a NUL-terminated malloc'd buffer. Returns 0 or an errno value.
static int read_all(FILE *f, char **out, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = mallocCheck(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return ENOMEM;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno ? errno : EIO;
        free(buf);
        return e;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

// Reads and parses the file at `path`. For an include, loc is the including line and rel the path
// as written there; for the top file both are NULL.
static int load_path(Parser *p, const char *path, const char *loc, const char *rel) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (!loc) return fail(p, "%s: cannot open config: %s", path, strerror(e));
        if (strcmp(path, rel) == 0) return fail(p, "%s: cannot open include '%s': %s", loc, rel, strerror(e));
        return fail(p, "%s: cannot open include '%s': %s (looked for '%s')", loc, rel, strerror(e), path);
    }
    char *real = realpath(path, NULL);
    if (!real) {
        int e = errno;
        fclose(f);
        return fail(p, "%s: cannot resolve '%s': %s", loc ? loc : path, path, strerror(e));
    }
    // refuse a file already being read (a cycle), showing the cycle from where it starts
    for (int i = 0; i < p->depth; i++) {
        if (p->chain_real[i] && strcmp(p->chain_real[i], real) == 0) {
            char chain[2048] = "";
            size_t used = 0;
            for (int j = i; j < p->depth && used < sizeof chain; j++)
                used += (size_t)snprintf(chain + used, sizeof chain - used, "%s -> ", p->chain_name[j]);
            if (used < sizeof chain) snprintf(chain + used, sizeof chain - used, "%s", path);
            free(real);
            fclose(f);
            return fail(p, "%s: include cycle: %s", loc ? loc : path, chain);
        }
    }
    if (p->depth >= CFG_MAX_INCLUDE_DEPTH + 1) {
        free(real);
        fclose(f);
        return fail(p, "%s: include '%s' nested too deep (at most %d levels of includes)", loc, rel,
                    CFG_MAX_INCLUDE_DEPTH);
    }
    char *text = NULL;
    size_t len = 0;
    int e = read_all(f, &text, &len);
    fclose(f);
    if (e != 0) {
        free(real);
        if (!loc) return fail(p, "%s: cannot read config: %s", path, strerror(e));
        return fail(p, "%s: cannot read include '%s': %s", loc, rel, strerror(e));
    }
    if (memchr(text, '\0', len)) {
        free(real);
        free(text);
        return fail(p, "%s: contains a NUL byte (not a text file?)", path);
    }
    // includes inside this file are relative to its directory
    char dir[CFG_PATH_MAX];
    const char *slash = strrchr(path, '/');
    int nd = slash ? (int)(slash - path + 1) : 0;
    dir[0] = 0;
    if (nd) snprintf(dir, sizeof dir, "%.*s", nd, path);

    p->chain_name[p->depth] = strdup(path);
    p->chain_real[p->depth] = real;
    if (!p->chain_name[p->depth]) FATAL("out of memory");
    p->depth++;
    int rc = parse_text(p, text, path, dir);
    p->depth--;
    free(p->chain_name[p->depth]);
    free(p->chain_real[p->depth]);
    free(text);
    return rc;
}

static Parser parser_make(const CfgTable *t, int nt, char *err, size_t errlen) {
    check_tables(t, nt);
    Parser p;
    memset(&p, 0, sizeof p);
    p.t = t;
    p.nt = nt;
    p.err = err;
    p.errlen = errlen;
    if (err && errlen > 0) err[0] = '\0';
    return p;
}

// ----------------------------------------------------------------------------------------------
// public API

int cfg_defaults(const CfgTable *t, int nt, char *err, size_t errlen) {
    Parser p = parser_make(t, nt, err, errlen);
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            const CfgKey *k = &t[i].keys[j];
            const char *def = k->def ? k->def : "";
            char why[512];
            if (parse_value(k, def, t[i].dst, why, sizeof why) != 0)
                return fail(&p, "defaults: key '%s': bad default '%s': %s", k->name, def, why);
        }
    return 0;
}

int cfg_load_file(const char *path, const CfgTable *t, int nt, char *err, size_t errlen) {
    Parser p = parser_make(t, nt, err, errlen);
    if (strlen(path) >= CFG_PATH_MAX) return fail(&p, "config path too long");
    return load_path(&p, path, NULL, NULL);
}

int cfg_load_text(const char *text, const char *name, const CfgTable *t, int nt, char *err, size_t errlen) {
    Parser p = parser_make(t, nt, err, errlen);
    char *copy = strdup(text);
    if (!copy) FATAL("out of memory");
    p.chain_name[0] = (char *)name; // in-memory text has no real path, so it cannot close a cycle
    p.chain_real[0] = NULL;
    p.depth = 1;
    int rc = parse_text(&p, copy, name, "");
    free(copy);
    return rc;
}

int cfg_set(const char *assignment, const char *origin, const CfgTable *t, int nt, char *err, size_t errlen) {
    Parser p = parser_make(t, nt, err, errlen);
    char *copy = strdup(assignment);
    if (!copy) FATAL("out of memory");
    p.chain_name[0] = (char *)origin;
    p.depth = 1;
    int rc;
    char *eq = strchr(copy, '=');
    if (!eq) {
        rc = fail(&p, "%s: expected 'key = value', got '%s'", origin, assignment);
    } else {
        *eq = '\0';
        char *key = trim(copy);
        char *val = trim(eq + 1);
        if (!valid_key_name(key)) {
            rc = fail(&p, "%s: expected 'key = value', got bad key '%s'", origin, key);
        } else if (strpbrk(val, "#\n\r")) {
            // the value could not be written back into a config file (checkpoints store one)
            rc = fail(&p, "%s: key '%s': value must not contain '#' or a line break", origin, key);
        } else {
            rc = assign(&p, origin, "", key, val);
        }
    }
    free(copy);
    return rc;
}

void cfg_write(FILE *f, const CfgTable *t, int nt) {
    check_tables(t, nt);
    char buf[CFG_STR_MAX + 32];
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            format_value(&t[i].keys[j], t[i].dst, buf, sizeof buf);
            fprintf(f, "%s = %s\n", t[i].keys[j].name, buf);
        }
}

char *cfg_to_string(const CfgTable *t, int nt) {
    check_tables(t, nt);
    char buf[CFG_STR_MAX + 32];
    size_t total = 1;
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            format_value(&t[i].keys[j], t[i].dst, buf, sizeof buf);
            total += strlen(t[i].keys[j].name) + 3 + strlen(buf) + 1;
        }
    char *out = mallocCheck(total);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            format_value(&t[i].keys[j], t[i].dst, buf, sizeof buf);
            used += (size_t)snprintf(out + used, total - used, "%s = %s\n", t[i].keys[j].name, buf);
        }
    return out;
}

static const char *type_name(CfgType type) {
    switch (type) {
    case CFG_INT: return "int";
    case CFG_FLOAT: return "float";
    case CFG_BOOL: return "bool";
    case CFG_STRING: return "string";
    }
    return "?";
}

static void range_text(const CfgKey *k, char *buf, size_t n) {
    if (k->type == CFG_INT || k->type == CFG_FLOAT)
        snprintf(buf, n, "[%.15g, %.15g]", k->min, k->max);
    else
        snprintf(buf, n, "-");
}

void cfg_print_help(FILE *f, const CfgTable *t, int nt) {
    check_tables(t, nt);
    int wname = 3, wrange = 5, wdef = 7;
    char buf[128];
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            const CfgKey *k = &t[i].keys[j];
            range_text(k, buf, sizeof buf);
            int ln = (int)strlen(k->name), lr = (int)strlen(buf), ld = k->def ? (int)strlen(k->def) : 2;
            if (ln > wname) wname = ln;
            if (lr > wrange) wrange = lr;
            if (ld > wdef && ld <= 40) wdef = ld; // a long default just overflows its column
        }
    fprintf(f, "  %-*s  %-6s  %-*s  %-*s  %s\n", wname, "key", "type", wrange, "range", wdef, "default", "help");
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < t[i].n; j++) {
            const CfgKey *k = &t[i].keys[j];
            range_text(k, buf, sizeof buf);
            const char *def = (k->def && k->def[0]) ? k->def : "\"\"";
            fprintf(f, "  %-*s  %-6s  %-*s  %-*s  %s\n", wname, k->name, type_name(k->type), wrange, buf, wdef, def,
                    k->help ? k->help : "");
        }
}
