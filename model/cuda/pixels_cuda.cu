// pixels_cuda.cu — per-pixel layers (fp32): one thread per output element or pixel, no reductions except
// the pixel shuffle's backward, whose four sources per input element are summed in the CPU's order.
#include <math.h>

#include "launch.h"
#include "pixels_cuda.h"

#define real float
#define R_(name) name
#define PLUCKER_FN __host__ __device__ static inline
#define GAUSS_FN __host__ __device__ static inline
#include "../plucker_math.h"
#include "../gauss_math.h"
#undef R_
#undef real

// one thread per pixel; the view's camera (plucker_math.h, the CPU's code) recomputed per thread
__global__ void plucker_forward_kernel(float *out, float *cam_o, const float *w2c, const float *Kin, int H, int W,
                                       size_t n) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    size_t i = t / ((size_t)H * W);
    int y = (int)(t / W % H), x = (int)(t % W);
    PluckerCam cam;
    plucker_cam(&cam, w2c + i * 12, Kin + i * 9);
    if (x == 0 && y == 0)
        for (int c = 0; c < 3; c++) cam_o[i * 3 + c] = (float)cam.o[c];
    plucker_ray(out + t * 6, &cam, x, y);
}

__global__ void pix_in_kernel(float *pix, const float *rgb, const float *pos, const float *pl, int Cin, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float *x = pix + i * Cin;
    for (int k = 0; k < 3; k++) x[k] = rgb[i * 3 + k];
    if (pos)
        for (int k = 0; k < 3; k++) x[3 + k] = pos[i * 3 + k];
    for (int k = 0; k < 6; k++) x[Cin - 6 + k] = pl[i * 6 + k];
}

// one thread per output element: out[(bv, ty, tx), (dy, dx, c)] = img[bv, ty·p+dy, tx·p+dx, c]
__global__ void unfold_kernel(float *out, const float *img, int H, int W, int Cin, int p, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int row = p * p * Cin, Hp = H / p, Wp = W / p;
    size_t tok = e / row;
    int r = (int)(e % row), dy = r / (p * Cin), dx = r / Cin % p, c = r % Cin;
    int tx = (int)(tok % Wp), ty = (int)(tok / Wp % Hp);
    size_t bv = tok / ((size_t)Wp * Hp);
    out[e] = img[((bv * H + ty * p + dy) * W + tx * p + dx) * Cin + c];
}

// torch's source index for align_corners=False: max(scale·(dst+0.5) − 0.5, 0), as model/layers.c
__device__ void bilinear_coord(int dst, int nin, int nout, int *i0, int *i1, float *l) {
    double s = (double)nin / nout * (dst + 0.5) - 0.5;
    if (s < 0) s = 0;
    int a = (int)s;
    if (a > nin - 1) a = nin - 1;
    *i0 = a;
    *i1 = a < nin - 1 ? a + 1 : a;
    *l = (float)(s - a);
}

__global__ void resample_kernel(float *out, const float *in, int hi, int wi, int ho, int wo, int C, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int c = (int)(e % C), x = (int)(e / C % wo), y = (int)(e / C / wo % ho);
    size_t bv = e / C / wo / ho;
    int y0, y1, x0, x1;
    float ly, lx;
    bilinear_coord(y, hi, ho, &y0, &y1, &ly);
    bilinear_coord(x, wi, wo, &x0, &x1, &lx);
    const float *base = in + bv * hi * wi * C;
    float p00 = base[((size_t)y0 * wi + x0) * C + c], p01 = base[((size_t)y0 * wi + x1) * C + c];
    float p10 = base[((size_t)y1 * wi + x0) * C + c], p11 = base[((size_t)y1 * wi + x1) * C + c];
    out[e] = (1 - ly) * ((1 - lx) * p00 + lx * p01) + ly * ((1 - lx) * p10 + lx * p11);
}

// out[bv, 2y+i, 2x+j, c] = in[bv, y, x, 4c+2i+j]; one thread per output element
__global__ void pixel_shuffle_forward_kernel(float *out, const float *in, int h, int w, int C, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int c = (int)(e % C), X = (int)(e / C % (2 * w)), Y = (int)(e / C / (2 * w) % (2 * h));
    size_t bv = e / C / (2 * w) / (2 * h);
    out[e] = in[((bv * h + Y / 2) * w + X / 2) * 4 * C + 4 * c + 2 * (Y % 2) + X % 2];
}

// din[bv, y, x, 4c+2i+j] += dout[bv, 2y+i, 2x+j, c]; one thread per input element (a bijection)
__global__ void pixel_shuffle_backward_kernel(float *din, const float *dout, int h, int w, int C, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int k = (int)(e % (4 * C)), c = k / 4, i = k / 2 % 2, j = k % 2;
    int x = (int)(e / (4 * C) % w), y = (int)(e / (4 * C) / w % h);
    size_t bv = e / (4 * C) / w / h;
    din[e] += dout[((bv * 2 * h + 2 * y + i) * 2 * w + 2 * x + j) * C + c];
}

// one thread per pixel: gauss_math.h, the CPU's code
__global__ void gaussians_forward_kernel(float *gauss, const float *raw, const float *rgb, const float *pos,
                                         const float *conf, const float *rays, const float *cam_o, GaussAct ga, int HW,
                                         size_t n_pix) {
    size_t n = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= n_pix) return;
    gaussian_act(gauss + n * 14, raw + n * 14, rgb + n * 3, pos ? pos + n * 3 : NULL, conf ? conf[n] : 1,
                 pos ? NULL : cam_o + (n / HW) * 3, pos ? NULL : rays + n * 6 + 3, &ga);
}

__global__ void gaussians_backward_kernel(float *draw, const float *dgauss, const float *raw, const float *pos,
                                          const float *conf, const float *rays, GaussAct ga, size_t n_pix) {
    size_t n = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= n_pix) return;
    gaussian_act_backward(draw + n * 14, dgauss + n * 14, raw + n * 14, pos != NULL, conf ? conf[n] : 1,
                          pos ? NULL : rays + n * 6 + 3, &ga);
}

extern "C" void plucker_forward_cuda(float *out, float *cam_o, const float *w2c, const float *K, int BV, int H, int W) {
    size_t n = (size_t)BV * H * W;
    if (n) KLAUNCH(plucker_forward_kernel, blocks_for(n, 128), 128, 0, out, cam_o, w2c, K, H, W, n);
}

extern "C" void pix_in_forward_cuda(float *pix, const float *rgb, const float *pos, const float *plucker, size_t npix,
                                    int Cin) {
    if (npix) KLAUNCH(pix_in_kernel, blocks_for(npix, 256), 256, 0, pix, rgb, pos, plucker, Cin, npix);
}

extern "C" void unfold_forward_cuda(float *out, const float *img, int BV, int H, int W, int Cin, int p) {
    size_t n = (size_t)BV * (H / p) * (W / p) * p * p * Cin;
    if (n) KLAUNCH(unfold_kernel, blocks_for(n, 256), 256, 0, out, img, H, W, Cin, p, n);
}

extern "C" void resample_bilinear_forward_cuda(float *out, const float *in, int BV, int hi, int wi, int ho, int wo,
                                               int C) {
    size_t n = (size_t)BV * ho * wo * C;
    if (n) KLAUNCH(resample_kernel, blocks_for(n, 256), 256, 0, out, in, hi, wi, ho, wo, C, n);
}

extern "C" void pixel_shuffle_forward_cuda(float *out, const float *in, int BV, int h, int w, int C) {
    size_t n = (size_t)BV * 4 * h * w * C;
    if (n) KLAUNCH(pixel_shuffle_forward_kernel, blocks_for(n, 256), 256, 0, out, in, h, w, C, n);
}

extern "C" void pixel_shuffle_backward_cuda(float *din, const float *dout, int BV, int h, int w, int C) {
    size_t n = (size_t)BV * 4 * h * w * C;
    if (n) KLAUNCH(pixel_shuffle_backward_kernel, blocks_for(n, 256), 256, 0, din, dout, h, w, C, n);
}

extern "C" void gaussians_forward_cuda(float *gauss, const float *raw, const float *rgb, const float *pos,
                                       const float *conf, const float *rays, const float *cam_o, const GaussAct *ga,
                                       int BV, int HW) {
    size_t n = (size_t)BV * HW;
    if (n) KLAUNCH(gaussians_forward_kernel, blocks_for(n, 128), 128, 0, gauss, raw, rgb, pos, conf, rays, cam_o, *ga, HW, n);
}

extern "C" void gaussians_backward_cuda(float *draw, const float *dgauss, const float *raw, const float *pos,
                                        const float *conf, const float *rays, const GaussAct *ga, int BV, int HW) {
    size_t n = (size_t)BV * HW;
    if (n) KLAUNCH(gaussians_backward_kernel, blocks_for(n, 128), 128, 0, draw, dgauss, raw, pos, conf, rays, *ga, n);
}
