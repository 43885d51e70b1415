// config.h — `key = value` config files with comments and includes, checked against key tables.
// Format: docs/formats.md. Errors are returned as text "FILE:LINE: key 'k': what was expected".
#ifndef AVAT3R_CONFIG_H
#define AVAT3R_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_STRING } CfgType;

// One key: stored at dst + offset as int (CFG_INT, CFG_BOOL: 0/1), double (CFG_FLOAT) or
// char[CFG_STR_MAX] (CFG_STRING). min/max bound INT and FLOAT values (inclusive).
#define CFG_STR_MAX 256
typedef struct {
    const char *name;
    CfgType type;
    size_t offset;
    double min, max;
    const char *def; // default value as text, parsed like a file value
    const char *help;
} CfgKey;

// Several tables may share one file (model keys, training keys, ...): a key must be in exactly one.
typedef struct {
    const CfgKey *keys;
    int n;
    void *dst;
} CfgTable;

// Sets every key of every table to its default. Returns 0, or -1 with a message in err.
int cfg_defaults(const CfgTable *t, int nt, char *err, size_t errlen);
// Parses a file (following includes) into the tables, over whatever values they hold.
int cfg_load_file(const char *path, const CfgTable *t, int nt, char *err, size_t errlen);
// Parses text held in memory; `name` is used in messages in place of a file name; includes are
// resolved relative to the current directory.
int cfg_load_text(const char *text, const char *name, const CfgTable *t, int nt, char *err, size_t errlen);
// Sets one key from "key=value" (command-line overrides); messages name `origin`.
int cfg_set(const char *assignment, const char *origin, const CfgTable *t, int nt, char *err, size_t errlen);
// Writes every key of the tables as canonical text: "key = value\n" in table order,
// %d for INT, %.17g for FLOAT, true/false for BOOL, the raw string for STRING.
void cfg_write(FILE *f, const CfgTable *t, int nt);
// Same into a malloc'd string (caller frees).
char *cfg_to_string(const CfgTable *t, int nt);
// Prints the key table (name, type, range, default, help).
void cfg_print_help(FILE *f, const CfgTable *t, int nt);

#endif
