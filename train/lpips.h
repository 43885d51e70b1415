// lpips.h — LPIPS v0.1 (Zhang et al. 2018, pip `lpips` 0.1.4) with a VGG16 or AlexNet trunk: forward
// and backward to the input image, float and double (_f64); the weight file reader/writer (float only).
// The math, the layout and the weight file byte by byte: docs/lpips.md.
#ifndef AVAT3R_LPIPS_H
#define AVAT3R_LPIPS_H
#include <stddef.h>
#include <stdint.h>

typedef enum { LPIPS_VGG = 1, LPIPS_ALEX = 2 } LpipsNet;

#define LPIPS_MAX_CONV 13 // VGG16 features[0:30] has 13 convs, AlexNet features[0:12] has 5
#define LPIPS_TAPS 5      // tapped ReLUs: relu1_2..relu5_3 (VGG), relu1..relu5 (AlexNet)
#define LPIPS_EPS 1e-10   // f̂ = f / (sqrt(Σ_c f²) + eps): on the norm, not inside the sqrt
// ScalingLayer of lpips 0.1: x' = (x − shift) / scale per RGB channel, after x ← 2x − 1 (normalize=True)
#define LPIPS_SHIFT_R (-0.030)
#define LPIPS_SHIFT_G (-0.088)
#define LPIPS_SHIFT_B (-0.188)
#define LPIPS_SCALE_R 0.458
#define LPIPS_SCALE_G 0.448
#define LPIPS_SCALE_B 0.450

// One conv of the trunk, followed by a ReLU; optionally preceded by a max-pool (floor mode, no padding).
typedef struct {
    int OC, IC, kh, kw, stride, pad; // as in the file's shape table and torch.nn.Conv2d
    int pool_k, pool_s;              // max-pool applied to this conv's input; 0, 0 = none
    int tap;                         // 0..4: this conv's ReLU output is tap `tap`; -1 = not tapped
    int torch_index;                 // index N of torchvision's features.N.weight (for the converter)
    float *w;                        // [OC, IC, kh, kw] (PyTorch order), points into LpipsWeights.data
    float *b;                        // [OC]
} LpipsConv;

typedef struct {                    // frozen weights of one LPIPS variant, float32, in one buffer
    int net;                        // LpipsNet
    int n_conv;                     // 13 (VGG16 features[0:30]) or 5 (AlexNet features[0:12])
    float *data;                    // all weights, in file order: per conv w then b, then lin0..lin4
    size_t n;                       // float count of data
    LpipsConv conv[LPIPS_MAX_CONV]; // shapes and pointers into data
    int tap_ch[LPIPS_TAPS];         // channels of each tap (= lin length)
    float *lin[LPIPS_TAPS];         // [tap_ch[k]] the lpips "lin" 1×1 conv weights, all ≥ 0
} LpipsWeights;

// "vgg" / "alex" -> LpipsNet, else -1. lpips_net_name: the inverse ("?" for anything else).
int lpips_net_from_name(const char *name);
const char *lpips_net_name(int net);
// Fills w with the architecture of `net` (shapes, pools, taps, float count n); data and every pointer
// stay NULL. Returns 0, or -1 for an unknown net.
int lpips_layout(LpipsWeights *w, int net);
// Smallest image side the net accepts (VGG 16: relu5_3 after four 2×2 pools; AlexNet 31: the second
// 3/2 pool needs a 3×3 input), and a check with a message ("LPIPS-vgg needs ..."). 0 or -1.
int lpips_min_size(int net);
int lpips_check_size(int net, int H, int W, char *err, size_t errlen);

// The trunk's geometry for N pairs of H×W images, shared by lpips_build and lpips_cuda_build: per conv i
// the grid before its pool (ph, pw), after it (ih, iw; the conv's input) and after the conv (oh, ow);
// the conv each tap reads; the count of weights (convs, biases, lins); the largest activation of one
// image stack [h, w, c] in elements, counting pooled inputs; and, for im2col chunks of at most cols_chunk
// elements (but at least one output row), the largest chunk in elements (cols) and in output pixels (max_m).
typedef struct {
    int ih[LPIPS_MAX_CONV], iw[LPIPS_MAX_CONV], ph[LPIPS_MAX_CONV], pw[LPIPS_MAX_CONV];
    int oh[LPIPS_MAX_CONV], ow[LPIPS_MAX_CONV];
    int tap_conv[LPIPS_TAPS];
    size_t n_w, max_elems, cols, max_m;
} LpipsPlan;
void lpips_plan(const LpipsWeights *w, int N, int H, int W, size_t cols_chunk, LpipsPlan *p);
// Output rows (image, oy) per im2col chunk of at most cols_chunk elements, K = kh·kw·IC, Wo output columns;
// at least 1.
int lpips_chunk_rows(size_t cols_chunk, size_t K, int Wo);

// Weight file (docs/lpips.md). load: 0, or -1 with "path: what is wrong" (nothing left allocated).
int lpips_weights_load(LpipsWeights *w, const char *path, char *err, size_t errlen);
void lpips_weights_save(const LpipsWeights *w, const char *path); // atomic (write, fsync, rename)
// Random weights for tests: He-normal conv weights (std sqrt(2 / (IC·kh·kw))), biases 0.1·N(0,1),
// lin |N(0,1)| (≥ 0 like the real ones). Tensor j in file order draws Philox stream j of `seed`.
void lpips_weights_random(LpipsWeights *w, int net, uint64_t seed);
void lpips_weights_free(LpipsWeights *w);

#define REAL_DECL "../train/lpips_decl.h" // relative to common/, where it is included
#include "../common/real_decl.h"

#endif
