// dlib_landmarks_ref.cpp — dlib's own shape predictor, the oracle for tools/landmarks.c (issue #6).
//
// usage: dlib_landmarks_ref MODEL JOBS
//   JOBS: one line per run, "IMAGE LEFT TOP RIGHT BOTTOM" (IMAGE a binary PGM (P5, gray) or PPM (P6, RGB),
//   maxval 255; the box inclusive, as dlib::rectangle). For each line it prints "job K" and then one line per
//   landmark: "XI YI X Y" — XI YI the point of dlib::shape_predictor (the library's own deserialize and
//   operator(), integers), X Y the same cascade before dlib's final rounding to a point, computed by dlib's
//   own impl:: functions (the loop of shape_predictor::operator(), without the rounding), %.17g (every bit of the
//   double, so that the comparison measures the agreement, not the printing). Exits 1 when
//   the rounded X Y differ from XI YI (the two would then not be the same algorithm).
//   On stderr: the model load time and dlib's time per prediction.
#include <dlib/image_processing.h>
#include <dlib/image_transforms.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The fields of a serialized dlib::shape_predictor, in file order (shape_predictor.h's deserialize).
struct Fields {
    dlib::matrix<float, 0, 1> initial_shape;
    std::vector<std::vector<dlib::impl::regression_tree>> forests;
    std::vector<std::vector<unsigned long>> anchor_idx;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
};

bool read_pnm(const std::string &path, int &channels, long &w, long &h, std::vector<unsigned char> &px) {
    std::ifstream f(path, std::ios::binary);
    std::string magic;
    long maxval = 0;
    if (!(f >> magic >> w >> h >> maxval) || maxval != 255 || w <= 0 || h <= 0) return false;
    if (magic == "P5") channels = 1;
    else if (magic == "P6") channels = 3;
    else return false;
    f.get(); // the single whitespace byte before the raster
    px.resize((size_t)(w * h * channels));
    return (bool)f.read((char *)px.data(), (std::streamsize)px.size());
}

// shape_predictor::operator()'s loop, dlib's own functions, stopped before the rounding to dlib::point.
template <typename Image>
std::vector<dlib::vector<double, 2>> continuous_points(const Fields &m, const Image &img, const dlib::rectangle &rect) {
    dlib::matrix<float, 0, 1> current_shape = m.initial_shape;
    std::vector<float> feature_pixel_values;
    for (unsigned long iter = 0; iter < m.forests.size(); ++iter) {
        dlib::impl::extract_feature_pixel_values(img, rect, current_shape, m.initial_shape, m.anchor_idx[iter],
                                                 m.deltas[iter], feature_pixel_values);
        unsigned long leaf_idx;
        for (unsigned long i = 0; i < m.forests[iter].size(); ++i)
            current_shape += m.forests[iter][i](feature_pixel_values, leaf_idx);
    }
    const dlib::point_transform_affine tform_to_img = dlib::impl::unnormalizing_tform(rect);
    std::vector<dlib::vector<double, 2>> out(current_shape.size() / 2);
    for (unsigned long i = 0; i < out.size(); ++i) out[i] = tform_to_img(dlib::impl::location(current_shape, i));
    return out;
}

template <typename Image>
int run(const dlib::shape_predictor &sp, const Fields &m, const Image &img, const dlib::rectangle &rect, double &ms) {
    auto t0 = std::chrono::steady_clock::now();
    dlib::full_object_detection det = sp(img, rect);
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::vector<dlib::vector<double, 2>> c = continuous_points(m, img, rect);
    int bad = 0;
    for (unsigned long k = 0; k < det.num_parts(); ++k) {
        const dlib::point p = det.part(k);
        std::printf("%ld %ld %.17g %.17g\n", p.x(), p.y(), c[k].x(), c[k].y());
        bad += (long)std::floor(c[k].x() + 0.5) != p.x() || (long)std::floor(c[k].y() + 0.5) != p.y();
    }
    return bad;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: dlib_landmarks_ref MODEL JOBS\n");
        return 2;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::string bytes;
    {
        std::ifstream f(argv[1], std::ios::binary);
        if (!f) {
            std::fprintf(stderr, "dlib_landmarks_ref: cannot open %s\n", argv[1]);
            return 1;
        }
        std::ostringstream ss;
        ss << f.rdbuf();
        bytes = ss.str();
    }
    dlib::shape_predictor sp;
    Fields m;
    try {
        std::istringstream a(bytes);
        dlib::deserialize(sp, a);
        std::istringstream b(bytes);
        int version = 0;
        dlib::deserialize(version, b);
        dlib::deserialize(m.initial_shape, b);
        dlib::deserialize(m.forests, b);
        dlib::deserialize(m.anchor_idx, b);
        dlib::deserialize(m.deltas, b);
    } catch (std::exception &e) {
        std::fprintf(stderr, "dlib_landmarks_ref: %s: %s\n", argv[1], e.what());
        return 1;
    }
    bytes.clear();
    std::fprintf(stderr, "dlib_landmarks_ref: model loaded twice in %.2f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::ifstream jobs(argv[2]);
    std::string line;
    int k = 0, bad = 0;
    double ms_sum = 0;
    while (std::getline(jobs, line)) {
        std::istringstream ls(line);
        std::string path;
        long l, t, r, b;
        if (!(ls >> path >> l >> t >> r >> b)) continue;
        int ch;
        long w, h;
        std::vector<unsigned char> px;
        if (!read_pnm(path, ch, w, h, px)) {
            std::fprintf(stderr, "dlib_landmarks_ref: %s: not a binary PGM/PPM with maxval 255\n", path.c_str());
            return 1;
        }
        const dlib::rectangle rect(l, t, r, b);
        std::printf("job %d\n", k++);
        double ms = 0;
        if (ch == 1) {
            dlib::array2d<unsigned char> img(h, w);
            for (long y = 0; y < h; y++)
                for (long x = 0; x < w; x++) img[y][x] = px[(size_t)(y * w + x)];
            bad += run(sp, m, img, rect, ms);
        } else {
            dlib::array2d<dlib::rgb_pixel> img(h, w);
            for (long y = 0; y < h; y++)
                for (long x = 0; x < w; x++) {
                    const unsigned char *p = &px[(size_t)(3 * (y * w + x))];
                    img[y][x] = dlib::rgb_pixel(p[0], p[1], p[2]);
                }
            bad += run(sp, m, img, rect, ms);
        }
        ms_sum += ms;
    }
    if (k) std::fprintf(stderr, "dlib_landmarks_ref: %d predictions, %.3f ms each (dlib)\n", k, ms_sum / k);
    if (bad) {
        std::fprintf(stderr, "dlib_landmarks_ref: %d points where the unrounded cascade does not round to dlib's\n",
                     bad);
        return 1;
    }
    return 0;
}
