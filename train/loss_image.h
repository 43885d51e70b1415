// loss_image.h — the image losses L1 and SSIM (forward and analytic backward) and the MSE behind PSNR,
// in float and double (_f64). Definitions, constants and measured test errors: docs/losses.md.
#ifndef AVAT3R_LOSS_IMAGE_H
#define AVAT3R_LOSS_IMAGE_H
#include <math.h>
#include <stddef.h>

// SSIM as 3D Gaussian Splatting trains with it (docs/losses.md): 11×11 Gaussian window, σ = 1.5,
// 'same' convolution with zero padding, C1 = (0.01·L)², C2 = (0.03·L)² for data range L = 1.
#define SSIM_WIN 11
#define SSIM_RADIUS 5
#define SSIM_SIGMA 1.5
#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)

// PSNR in dB of images in [0, 1] from their mean squared error (mse_f64 / mse); +inf when mse = 0.
static inline double psnr_from_mse(double mse) { return mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY; }
// The same capped at 120 dB (mse 1e-12), so that means over images and JSON logs stay finite.
static inline double psnr_capped(double mse) { return psnr_from_mse(mse > 1e-12 ? mse : 1e-12); }

#define REAL_DECL "../train/loss_image_decl.h" // relative to common/, where it is included
#include "../common/real_decl.h"

#endif
