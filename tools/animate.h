// animate.h — an avatar being animated: the network with its input views fixed, run once per expression
// code, its Gaussians exported as a PLY would hold them and rendered into a few cameras. Shared by
// `avat3r animate` (tools/cmd_animate.c) and `avat3r bench animate` (tools/cmd_bench_animate.c).
#ifndef AVAT3R_ANIMATE_H
#define AVAT3R_ANIMATE_H
#include <stddef.h>

#include "avat3r.h"
#include "raster.h"
#include "step_device.h"

typedef struct {
    ModelConfig c;
    Avat3r m;                 // batch 1
    NetDevice nd;             // where the network runs (the Gaussians land in m.a.gauss either way)
    Avat3rBatch in;           // the input views (the caller's buffers); in.expr is set per frame
    int views_sent;           // the views are on the device (NetDevice): later frames send only the code
    // the exported Gaussians of the last forward: every input pixel whose DUSt3R confidence is at least
    // conf_threshold (all of them without DUSt3R), activated values
    size_t n;
    float *means, *quats, *scales, *opac, *colors; // [G, 3 | 4 | 3 | 1 | 3], first n used
    int W, H, ncam;           // render size and cameras per call
    float bg[3];
    Raster r;                 // built at the first render, for n Gaussians
    int have_raster;
} Avatar;

// params [n_params] are copied. in: the input views with B = 1 (kept by pointer, expr ignored). device:
// "cpu" or "cuda" for the network (train/step_device.h; the export and the renders stay on the CPU).
// 0, or −1 with the reason in err (nothing left allocated).
int avatar_build(Avatar *a, const ModelConfig *c, const float *params, const Avat3rBatch *in, int W, int H, int ncam,
                 const float bg[3], const char *device, char *err, size_t errlen);
void avatar_free(Avatar *a);
// Network forward with this code [expr_dim], then the export (confidence threshold). Returns a->n.
size_t avatar_forward(Avatar *a, const float *code);
// Renders the exported Gaussians into ncam cameras: w2c [ncam, 12], K [ncam, 9] at W×H; the images are
// in a->r.image [ncam, H, W, 3].
void avatar_render(Avatar *a, const float *w2c, const float *K);

#endif
