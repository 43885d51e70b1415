// raster_project.h — the projection of one Gaussian into one camera (EWA, frustum clamp, blur, tile
// rectangle) and its backward, written once over `real` (docs/render.md). Included by render/raster.c
// (float, and double with -DAVAT3R_F64; real and R_ from common/real.h) and by the CUDA kernels
// (render/cuda/raster_kernels.cuh: real = float, RASTER_FN = __device__ static), so both paths run the
// same arithmetic in the same order. No include guard: each precision of raster.c includes it once.
#ifndef RASTER_FN
#define RASTER_FN static
#endif

typedef struct {
    real p[3];           // camera-space mean
    real qn[4], qlen;    // normalised quaternion and the input's length
    real Rq[3][3];       // rotation of the Gaussian
    real M[3][3];        // Rq · diag(scale)
    real Sig[3][3];      // 3D covariance
    real J[2][3];        // EWA Jacobian
    real T[2][3];        // J · R_view
    int clamp_x, clamp_y; // frustum clamp active (-1/+1) or 0
    real a, b, c, det;   // 2D covariance (blurred) and its determinant
    real u, v;           // projected mean (pixels)
    real A, B, C;        // conic
    int x0, x1, y0, y1;  // tile rectangle
} R_(Proj);

// Returns 1 if drawn, 0 if culled (behind the near plane, degenerate, or off every tile).
RASTER_FN int R_(project)(R_(Proj) *P, const real *mean, const real *quat, const real *scale, const real *w2c,
                       const real *K, int W, int H, int tiles_x, int tiles_y) {
    for (int i = 0; i < 3; i++)
        P->p[i] = w2c[i * 4 + 0] * mean[0] + w2c[i * 4 + 1] * mean[1] + w2c[i * 4 + 2] * mean[2] + w2c[i * 4 + 3];
    real z = P->p[2];
    if (!(z >= (real)RASTER_NEAR)) return 0;
    real qw = quat[0], qx = quat[1], qy = quat[2], qz = quat[3];
    P->qlen = sqrt(qw * qw + qx * qx + qy * qy + qz * qz);
    qw /= P->qlen, qx /= P->qlen, qy /= P->qlen, qz /= P->qlen;
    P->qn[0] = qw, P->qn[1] = qx, P->qn[2] = qy, P->qn[3] = qz;
    real R[3][3] = {{1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)},
                    {2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)},
                    {2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            P->Rq[i][j] = R[i][j];
            P->M[i][j] = R[i][j] * scale[j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            P->Sig[i][j] = P->M[i][0] * P->M[j][0] + P->M[i][1] * P->M[j][1] + P->M[i][2] * P->M[j][2];
    real fx = K[0], fy = K[4], cx = K[2], cy = K[5];
    real limx = (real)RASTER_CLAMP_FOV * (real)0.5 * W / fx, limy = (real)RASTER_CLAMP_FOV * (real)0.5 * H / fy;
    real xz = P->p[0] / z, yz = P->p[1] / z;
    P->clamp_x = xz < -limx ? -1 : xz > limx ? 1 : 0;
    P->clamp_y = yz < -limy ? -1 : yz > limy ? 1 : 0;
    real tx = z * (P->clamp_x ? P->clamp_x * limx : xz), ty = z * (P->clamp_y ? P->clamp_y * limy : yz);
    P->J[0][0] = fx / z, P->J[0][1] = 0, P->J[0][2] = -fx * tx / (z * z);
    P->J[1][0] = 0, P->J[1][1] = fy / z, P->J[1][2] = -fy * ty / (z * z);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            P->T[i][j] = P->J[i][0] * w2c[0 * 4 + j] + P->J[i][1] * w2c[1 * 4 + j] + P->J[i][2] * w2c[2 * 4 + j];
    real TS[2][3]; // T · Σ
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) TS[i][j] = P->T[i][0] * P->Sig[0][j] + P->T[i][1] * P->Sig[1][j] + P->T[i][2] * P->Sig[2][j];
    P->a = TS[0][0] * P->T[0][0] + TS[0][1] * P->T[0][1] + TS[0][2] * P->T[0][2] + (real)RASTER_BLUR;
    P->b = TS[0][0] * P->T[1][0] + TS[0][1] * P->T[1][1] + TS[0][2] * P->T[1][2];
    P->c = TS[1][0] * P->T[1][0] + TS[1][1] * P->T[1][1] + TS[1][2] * P->T[1][2] + (real)RASTER_BLUR;
    P->det = P->a * P->c - P->b * P->b;
    if (!(P->det > 0)) return 0;
    P->A = P->c / P->det, P->B = -P->b / P->det, P->C = P->a / P->det;
    P->u = fx * xz + cx, P->v = fy * yz + cy;
    real mid = (real)0.5 * (P->a + P->c), disc = mid * mid - P->det;
    real lmax = mid + sqrt(disc > (real)0.1 ? disc : (real)0.1);
    real rad = ceil(3 * sqrt(lmax));
    const real TL = RASTER_TILE;
    real fx0 = floor((P->u - rad) / TL), fx1 = floor((P->u + rad + TL - 1) / TL);
    real fy0 = floor((P->v - rad) / TL), fy1 = floor((P->v + rad + TL - 1) / TL);
    // clamp in floating point first (exact for these integer values; NaN -> 0): a far off-screen Gaussian
    // must not overflow an int
    P->x0 = (int)fmin(fmax(fx0, (real)0), (real)tiles_x), P->x1 = (int)fmin(fmax(fx1, (real)0), (real)tiles_x);
    P->y0 = (int)fmin(fmax(fy0, (real)0), (real)tiles_y), P->y1 = (int)fmin(fmax(fy1, (real)0), (real)tiles_y);
    return P->x1 > P->x0 && P->y1 > P->y0;
}

// Projection backward for one Gaussian in one image: from dL/d(u, v, A, B, C, z) to the mean, quaternion
// and scale, accumulated into dmean[3], dquat[4], dscale[3].
RASTER_FN void R_(project_backward)(const R_(Proj) *P, const real *w2c, const real *K, const real *scale,
                                 const real *gr, real *dmean, real *dquat, real *dscale) {
    real du = gr[0], dv = gr[1], dA = gr[2], dB = gr[3], dC = gr[4], dzd = gr[6];
    real a = P->a, b = P->b, c = P->c, det2 = P->det * P->det;
    // conic (A, B, C) = (c, −b, a)/det  ->  2D covariance entries a, b (off-diagonal, once), c
    real da = dA * (-c * c / det2) + dB * (b * c / det2) + dC * (-b * b / det2);
    real db = dA * (2 * b * c / det2) + dB * (-1 / P->det - 2 * b * b / det2) + dC * (2 * a * b / det2);
    real dc = dA * (-b * b / det2) + dB * (a * b / det2) + dC * (-a * a / det2);
    // Σ2 = T Σ Tᵀ: with G2 = [[da, db/2], [db/2, dc]], dΣ = Tᵀ G2 T and dT = 2 G2 T Σ
    real G2[2][2] = {{da, db / 2}, {db / 2, dc}};
    real dSig[3][3], dT[2][3], G2T[2][3];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) G2T[i][j] = G2[i][0] * P->T[0][j] + G2[i][1] * P->T[1][j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) dSig[i][j] = P->T[0][i] * G2T[0][j] + P->T[1][i] * G2T[1][j];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            dT[i][j] = 2 * (G2T[i][0] * P->Sig[0][j] + G2T[i][1] * P->Sig[1][j] + G2T[i][2] * P->Sig[2][j]);
    // T = J · R_view  ->  dJ = dT · R_viewᵀ
    real dJ[2][3];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) dJ[i][j] = dT[i][0] * w2c[j * 4 + 0] + dT[i][1] * w2c[j * 4 + 1] + dT[i][2] * w2c[j * 4 + 2];
    // J and the projection -> camera-space mean
    real fx = K[0], fy = K[4], x = P->p[0], y = P->p[1], z = P->p[2], z2 = z * z, z3 = z2 * z;
    real dp[3] = {0, 0, dzd};
    dp[0] += du * fx / z;
    dp[1] += dv * fy / z;
    dp[2] += -du * fx * x / z2 - dv * fy * y / z2;
    dp[2] += -dJ[0][0] * fx / z2 - dJ[1][1] * fy / z2;
    if (!P->clamp_x) { // J02 = −fx·x/z²
        dp[0] += dJ[0][2] * (-fx / z2);
        dp[2] += dJ[0][2] * (2 * fx * x / z3);
    } else { // J02 = −fx·(±limx)/z
        real tx_z = -P->J[0][2] * z / fx; // = ±limx
        dp[2] += dJ[0][2] * (fx * tx_z / z2);
    }
    if (!P->clamp_y) {
        dp[1] += dJ[1][2] * (-fy / z2);
        dp[2] += dJ[1][2] * (2 * fy * y / z3);
    } else {
        real ty_z = -P->J[1][2] * z / fy;
        dp[2] += dJ[1][2] * (fy * ty_z / z2);
    }
    // p = R μ + t  ->  dμ = Rᵀ dp
    for (int j = 0; j < 3; j++) dmean[j] += w2c[0 * 4 + j] * dp[0] + w2c[1 * 4 + j] * dp[1] + w2c[2 * 4 + j] * dp[2];
    // Σ = M Mᵀ -> dM = (dΣ + dΣᵀ) M ; M = Rq diag(s) -> ds_j = Σ_i Rq_ij dM_ij, dRq_ij = dM_ij s_j
    real dM[3][3], dR[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            real acc = 0;
            for (int k = 0; k < 3; k++) acc += (dSig[i][k] + dSig[k][i]) * P->M[k][j];
            dM[i][j] = acc;
        }
    for (int j = 0; j < 3; j++) {
        real acc = 0;
        for (int i = 0; i < 3; i++) {
            acc += P->Rq[i][j] * dM[i][j];
            dR[i][j] = dM[i][j] * scale[j];
        }
        dscale[j] += acc;
    }
    // rotation matrix of the normalised quaternion -> its (w, x, y, z), then through the normalisation
    real w = P->qn[0], qx = P->qn[1], qy = P->qn[2], qz = P->qn[3];
    real dq[4];
    dq[0] = 2 * (-qz * dR[0][1] + qy * dR[0][2] + qz * dR[1][0] - qx * dR[1][2] - qy * dR[2][0] + qx * dR[2][1]);
    dq[1] = 2 * (qy * dR[0][1] + qz * dR[0][2] + qy * dR[1][0] - w * dR[1][2] + qz * dR[2][0] + w * dR[2][1]) -
            4 * qx * (dR[1][1] + dR[2][2]);
    dq[2] = 2 * (qx * dR[0][1] + w * dR[0][2] + qx * dR[1][0] + qz * dR[1][2] - w * dR[2][0] + qz * dR[2][1]) -
            4 * qy * (dR[0][0] + dR[2][2]);
    dq[3] = 2 * (-w * dR[0][1] + qx * dR[0][2] + w * dR[1][0] + qy * dR[1][2] + qx * dR[2][0] + qy * dR[2][1]) -
            4 * qz * (dR[0][0] + dR[1][1]);
    real dot = w * dq[0] + qx * dq[1] + qy * dq[2] + qz * dq[3];
    for (int k = 0; k < 4; k++) dquat[k] += (dq[k] - P->qn[k] * dot) / P->qlen;
}
