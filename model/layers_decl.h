// layers_decl.h — declarations of the layer functions over `real` with names R_(...).
// No include guard on purpose: layers.h includes it once per precision. Conventions (llm.c):
// outputs first, then inputs, then weights, then sizes; backward functions ACCUMULATE (+=) into
// every gradient they are given (a NULL gradient pointer is skipped). Shapes are in the comments.

// out[N,OC] = inp[N,C] · w[OC,C]ᵀ + bias[OC] (bias may be NULL). cblas gemm.
void R_(matmul_forward)(real *out, const real *inp, const real *w, const real *bias, int N, int C, int OC);
// out[N,OC] = res[N,OC] + inp[N,C] · w[OC,C]ᵀ + bias[OC] (res and bias may be NULL): a projection added into
// the residual stream in one pass. out may not alias inp; it may equal res.
void R_(matmul_residual_forward)(real *out, const real *res, const real *inp, const real *w, const real *bias, int N,
                                 int C, int OC);
// The naive triple loop (double accumulation): the test oracle for matmul_forward.
void R_(matmul_forward_naive)(real *out, const real *inp, const real *w, const real *bias, int N, int C, int OC);
// dinp[N,C] += dout·w ; dw[OC,C] += doutᵀ·inp ; dbias[OC] += Σ_n dout
void R_(matmul_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w, int N,
                         int C, int OC);

// out[N,C] = (inp - mean) * rstd * w + b ; saves mean[N], rstd[N]
void R_(layernorm_forward)(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b, int N,
                           int C, double eps);
void R_(layernorm_backward)(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w,
                            const real *mean, const real *rstd, int N, int C);

// tanh-approximated GELU and ReLU, elementwise over n
void R_(gelu_forward)(real *out, const real *inp, size_t n);
void R_(gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n);
void R_(relu_forward)(real *out, const real *inp, size_t n);
void R_(relu_backward)(real *dinp, const real *inp, const real *dout, size_t n);
// dst += src
void R_(add_inplace)(real *dst, const real *src, size_t n);

// Multi-head softmax attention, chunked over queries so the [Nq,Nk] score matrix need not be stored
// (P NULL: the backward recomputes it; a P buffer [B, NH, Nq, Nk] keeps it when memory allows).
// Per batch b: q rows [Nq] with row stride ldq (batch stride Nq·ldq), k/v rows [Nk] with strides
// ldk/ldv, out rows with stride ldo; head h uses columns [h·hd, h·hd+hd). lse[B,NH,Nq] keeps the
// log-sum-exp of each score row for the backward. scratch: attention_scratch_size(Nk, chunk, nthreads)
// reals; the parallel loops use at most nthreads threads, so the scratch always suffices.
size_t R_(attention_scratch_size)(int Nk, int chunk, int nthreads);
void R_(attention_forward)(real *out, int ldo, real *lse, real *P, const real *q, int ldq, const real *k, int ldk,
                           const real *v, int ldv, int B, int Nq, int Nk, int NH, int hd, real *scratch, int chunk,
                           int nthreads);
// dq/dk/dv use the strides of q/k/v, dout the stride of out; all += . P: NULL, or [B, NH, Nq, Nk] where the
// forward leaves the probabilities so that the backward reads them instead of recomputing Q Kᵀ and the exp.
void R_(attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *out, int ldo,
                            const real *lse, const real *P, const real *q, int ldq, const real *k, int ldk,
                            const real *v, int ldv, int B, int Nq, int Nk, int NH, int hd, real *scratch, int chunk,
                            int nthreads);

// Plücker rays (o×d, d) and camera centres. w2c[BV,3,4], K[BV,3,3] -> out[BV,H,W,6], cam_o[BV,3].
void R_(plucker_forward)(real *out, real *cam_o, const real *w2c, const real *K, int BV, int H, int W);
// Unfold p×p patches: img[BV,H,W,Cin] -> out[BV·(H/p)·(W/p), p·p·Cin], element order (py, px, c).
void R_(unfold_forward)(real *out, const real *img, int BV, int H, int W, int Cin, int p);
// Bilinear resize, align_corners=False, edge-clamped (torch interpolate): in[BV,hi,wi,C] -> out[BV,ho,wo,C].
void R_(resample_bilinear_forward)(real *out, const real *in, int BV, int hi, int wi, int ho, int wo, int C);
// PixelShuffle(2) in channel-last layout: in[BV,h,w,4C] -> out[BV,2h,2w,C], out[2y+i,2x+j,c] = in[y,x,4c+2i+j].
void R_(pixel_shuffle_forward)(real *out, const real *in, int BV, int h, int w, int C);
void R_(pixel_shuffle_backward)(real *din, const real *dout, int BV, int h, int w, int C);
// The upsampler's PixelShuffle(2) then GELU in one pass: pre[BV,2h,2w,C] = shuffle(in[BV,h,w,4C]) (kept for the
// backward), act = gelu(pre). The backward WRITES din[BV,h,w,4C] = shuffleᵀ(gelu'(pre)·dact) (no accumulation:
// the shuffle is a permutation, so the caller needs no cleared buffer).
void R_(shuffle_gelu_forward)(real *act, real *pre, const real *in, int BV, int h, int w, int C);
void R_(shuffle_gelu_backward)(real *din, const real *pre, const real *dact, int BV, int h, int w, int C);

// Gaussian activations (docs/model.md step 11). raw[BV·HW,14] -> gauss[BV·HW,14].
// rgb[BV·HW,3]; pos[BV·HW,3] and conf[BV·HW] (NULL without DUSt3R); rays = Plücker [BV·HW,6] and
// cam_o[BV,3] (used without DUSt3R).
typedef struct {
    double pos_offset_max, depth_near, depth_far, scale_bias, log_scale_min, log_scale_max;
} R_(GaussAct);
void R_(gaussians_forward)(real *gauss, const real *raw, const real *rgb, const real *pos, const real *conf,
                           const real *rays, const real *cam_o, const R_(GaussAct) *ga, int BV, int HW);
void R_(gaussians_backward)(real *draw, const real *dgauss, const real *raw, const real *pos, const real *conf,
                            const real *rays, const R_(GaussAct) *ga, int BV, int HW);
