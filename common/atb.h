// atb.h — tensor bundles (.atb): named float32/float64/int32 tensors in one file (docs/formats.md).
// Used for test batches and the PyTorch reference's debug states.
#ifndef AVAT3R_ATB_H
#define AVAT3R_ATB_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

enum { ATB_F32 = 0, ATB_F64 = 1, ATB_I32 = 2 };
#define ATB_MAX_DIMS 8

typedef struct {
    char name[128];
    int dtype, ndim;
    uint64_t dims[ATB_MAX_DIMS];
    size_t count; // product of dims
    void *data;
} AtbTensor;

typedef struct {
    int n;
    AtbTensor *t;
} Atb;

// Reads a whole bundle. Returns 0, or -1 with "path: what is wrong" in err (nothing left allocated).
int atb_read(const char *path, Atb *out, char *err, size_t errlen);
void atb_free(Atb *b);
const AtbTensor *atb_find(const Atb *b, const char *name); // NULL when absent
// Copies tensor `name` into dst as float or double (any stored dtype), checking the element count.
// Returns 0, or -1 with a message naming the tensor.
int atb_get_f32(const Atb *b, const char *name, float *dst, size_t count, char *err, size_t errlen);
int atb_get_f64(const Atb *b, const char *name, double *dst, size_t count, char *err, size_t errlen);

// Writing: begin with the tensor count, add exactly that many tensors, end (atomic rename).
typedef struct {
    AtomicFile af;
    uint32_t expected, written;
} AtbWriter;
void atb_write_begin(AtbWriter *w, const char *path, uint32_t count);
void atb_write_tensor(AtbWriter *w, const char *name, int dtype, int ndim, const uint64_t *dims, const void *data);
void atb_write_end(AtbWriter *w);

#endif
