// pixels_cuda.h — the network's per-pixel layers on the GPU (fp32): Plücker rays, the per-pixel input,
// patch unfolding, bilinear resampling, pixel shuffle and the Gaussian activations. Same arguments and
// layouts as their CPU oracles in model/layers_decl.h (and avat3r.c's step 2); device pointers.
#ifndef AVAT3R_PIXELS_CUDA_H
#define AVAT3R_PIXELS_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
#include "../layers.h" // GaussAct
// w2c[BV,3,4], K[BV,3,3] -> out[BV,H,W,6], cam_o[BV,3] (per-pixel math in double, as on the CPU)
void plucker_forward_cuda(float *out, float *cam_o, const float *w2c, const float *K, int BV, int H, int W);
// pix[n, :] = [rgb | pos (when pos) | plücker], n < npix, Cin = 3 + 3·(pos != NULL) + 6
void pix_in_forward_cuda(float *pix, const float *rgb, const float *pos, const float *plucker, size_t npix, int Cin);
// img[BV,H,W,Cin] -> out[BV·(H/p)·(W/p), p·p·Cin]
void unfold_forward_cuda(float *out, const float *img, int BV, int H, int W, int Cin, int p);
// in[BV,hi,wi,C] -> out[BV,ho,wo,C], align_corners=False, edge-clamped
void resample_bilinear_forward_cuda(float *out, const float *in, int BV, int hi, int wi, int ho, int wo, int C);
// in[BV,h,w,4C] <-> out[BV,2h,2w,C]; the backward accumulates into din
void pixel_shuffle_forward_cuda(float *out, const float *in, int BV, int h, int w, int C);
void pixel_shuffle_backward_cuda(float *din, const float *dout, int BV, int h, int w, int C);
// raw[BV·HW,14] -> gauss[BV·HW,14] (docs/model.md step 11); the backward accumulates into draw
void gaussians_forward_cuda(float *gauss, const float *raw, const float *rgb, const float *pos, const float *conf,
                            const float *rays, const float *cam_o, const GaussAct *ga, int BV, int HW);
void gaussians_backward_cuda(float *draw, const float *dgauss, const float *raw, const float *pos, const float *conf,
                             const float *rays, const GaussAct *ga, int BV, int HW);
#ifdef __cplusplus
}
#endif
#endif
