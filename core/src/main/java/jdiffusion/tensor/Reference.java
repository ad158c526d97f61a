package jdiffusion.tensor;

/**
 * Plain scalar versions of every kernel: the oracle the SIMD kernels in {@link Ops}, {@link Linear} and
 * {@link Conv2d} are tested against. Written for clarity, not speed.
 *
 * <p>Layouts: activations are row-major "tokens x channels" (NHWC); an image batch is [B][H][W][C].
 * Linear weights are [out][in]; convolution weights [out][in][kh][kw] as in checkpoints.
 */
public final class Reference {
    private Reference() {
    }

    /** y[r][o] = bias[o] + sum_i x[r][i] * w[o][i]. */
    public static float[] linear(float[] x, int rows, float[] w, float[] bias, int out, int in) {
        float[] y = new float[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double s = bias == null ? 0 : bias[o];
                for (int i = 0; i < in; i++) {
                    s += (double) x[r * in + i] * w[o * in + i];
                }
                y[r * out + o] = (float) s;
            }
        }
        return y;
    }

    /** C[m][n] = sum_k A[m][k] * B[k][n] (all row-major). */
    public static float[] matmul(float[] a, float[] b, int m, int n, int k) {
        float[] c = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    s += (double) a[i * k + p] * b[p * n + j];
                }
                c[i * n + j] = (float) s;
            }
        }
        return c;
    }

    /** 2-D convolution, NHWC in and out, with separate paddings (the VAE encoder pads only bottom/right). */
    public static float[] conv2d(float[] x, int batch, int h, int w, int cin, float[] weight, float[] bias, int cout,
                                 int kh, int kw, int stride, int padTop, int padLeft, int padBottom, int padRight) {
        int oh = (h + padTop + padBottom - kh) / stride + 1;
        int ow = (w + padLeft + padRight - kw) / stride + 1;
        float[] y = new float[batch * oh * ow * cout];
        for (int b = 0; b < batch; b++) {
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    for (int o = 0; o < cout; o++) {
                        double s = bias == null ? 0 : bias[o];
                        for (int ky = 0; ky < kh; ky++) {
                            int iy = oy * stride + ky - padTop;
                            if (iy < 0 || iy >= h) {
                                continue;
                            }
                            for (int kx = 0; kx < kw; kx++) {
                                int ix = ox * stride + kx - padLeft;
                                if (ix < 0 || ix >= w) {
                                    continue;
                                }
                                int xi = ((b * h + iy) * w + ix) * cin;
                                for (int c = 0; c < cin; c++) {
                                    s += (double) x[xi + c] * weight[((o * cin + c) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[((b * oh + oy) * ow + ox) * cout + o] = (float) s;
                    }
                }
            }
        }
        return y;
    }

    /** Group norm over [B][HW][C] with C split into groups of consecutive channels; optional SiLU after. */
    public static float[] groupNorm(float[] x, int batch, int hw, int c, int groups, float[] gamma, float[] beta,
                                    float eps, boolean silu) {
        float[] y = new float[x.length];
        int cg = c / groups;
        for (int b = 0; b < batch; b++) {
            for (int g = 0; g < groups; g++) {
                double sum = 0;
                double sq = 0;
                for (int p = 0; p < hw; p++) {
                    for (int j = 0; j < cg; j++) {
                        double v = x[(b * hw + p) * c + g * cg + j];
                        sum += v;
                        sq += v * v;
                    }
                }
                double n = (double) hw * cg;
                double mean = sum / n;
                double var = Math.max(0, sq / n - mean * mean);
                double inv = 1.0 / Math.sqrt(var + eps);
                for (int p = 0; p < hw; p++) {
                    for (int j = 0; j < cg; j++) {
                        int ch = g * cg + j;
                        int idx = (b * hw + p) * c + ch;
                        double v = (x[idx] - mean) * inv * gamma[ch] + beta[ch];
                        y[idx] = (float) (silu ? v / (1 + Math.exp(-v)) : v);
                    }
                }
            }
        }
        return y;
    }

    /** Layer norm of each row of [rows][c]. */
    public static float[] layerNorm(float[] x, int rows, int c, float[] gamma, float[] beta, float eps) {
        float[] y = new float[x.length];
        for (int r = 0; r < rows; r++) {
            double sum = 0;
            for (int j = 0; j < c; j++) {
                sum += x[r * c + j];
            }
            double mean = sum / c;
            double var = 0;
            for (int j = 0; j < c; j++) {
                double d = x[r * c + j] - mean;
                var += d * d;
            }
            var /= c;
            double inv = 1.0 / Math.sqrt(var + eps);
            for (int j = 0; j < c; j++) {
                y[r * c + j] = (float) ((x[r * c + j] - mean) * inv * gamma[j] + (beta == null ? 0 : beta[j]));
            }
        }
        return y;
    }

    /** Softmax of each row of [rows][cols], in place. */
    public static void softmaxRows(float[] x, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < cols; j++) {
                max = Math.max(max, x[r * cols + j]);
            }
            double sum = 0;
            for (int j = 0; j < cols; j++) {
                sum += Math.exp(x[r * cols + j] - max);
            }
            for (int j = 0; j < cols; j++) {
                x[r * cols + j] = (float) (Math.exp(x[r * cols + j] - max) / sum);
            }
        }
    }

    /**
     * Multi-head scaled dot-product attention. q is [B][nq][heads*hd], k and v are [B][nk][heads*hd]; head h uses
     * channels h*hd..(h+1)*hd. Scale 1/sqrt(hd). causal masks keys after the query position. Output [B][nq][heads*hd].
     */
    public static float[] attention(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                                    boolean causal) {
        int c = heads * hd;
        float[] out = new float[batch * nq * c];
        double scale = 1.0 / Math.sqrt(hd);
        double[] s = new double[nk];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < nq; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    int limit = causal ? Math.min(nk, i + 1) : nk;
                    for (int j = 0; j < limit; j++) {
                        double d = 0;
                        for (int e = 0; e < hd; e++) {
                            d += (double) q[(b * nq + i) * c + h * hd + e] * k[(b * nk + j) * c + h * hd + e];
                        }
                        s[j] = d * scale;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < limit; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int e = 0; e < hd; e++) {
                        double acc = 0;
                        for (int j = 0; j < limit; j++) {
                            acc += s[j] * v[(b * nk + j) * c + h * hd + e];
                        }
                        out[(b * nq + i) * c + h * hd + e] = (float) (acc / sum);
                    }
                }
            }
        }
        return out;
    }

    /** Exact GELU, x * Phi(x), with erf. */
    public static float gelu(float x) {
        return (float) (0.5 * x * (1 + erf(x / Math.sqrt(2))));
    }

    /** CLIP's quick GELU: x * sigmoid(1.702 x). */
    public static float quickGelu(float x) {
        return (float) (x / (1 + Math.exp(-1.702 * x)));
    }

    public static float silu(float x) {
        return (float) (x / (1 + Math.exp(-(double) x)));
    }

    /** GEGLU: rows of [a | gate] (2*inner wide) become a * gelu(gate), inner wide. */
    public static float[] geglu(float[] x, int rows, int inner) {
        float[] y = new float[rows * inner];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < inner; j++) {
                y[r * inner + j] = x[r * 2 * inner + j] * gelu(x[r * 2 * inner + inner + j]);
            }
        }
        return y;
    }

    /** Nearest-neighbour resize of [B][H][W][C] to [B][oh][ow][C] (torch's 'nearest': src = floor(dst * in / out)). */
    public static float[] resizeNearest(float[] x, int batch, int h, int w, int c, int oh, int ow) {
        float[] y = new float[batch * oh * ow * c];
        for (int b = 0; b < batch; b++) {
            for (int oy = 0; oy < oh; oy++) {
                int iy = (int) Math.floor(oy * ((double) h / oh));
                for (int ox = 0; ox < ow; ox++) {
                    int ix = (int) Math.floor(ox * ((double) w / ow));
                    System.arraycopy(x, ((b * h + iy) * w + ix) * c, y, ((b * oh + oy) * ow + ox) * c, c);
                }
            }
        }
        return y;
    }

    /** erf with absolute error below 1.2e-7 (the Chebyshev-fitted erfc of Numerical Recipes). */
    public static double erf(double x) {
        double t = 1.0 / (1.0 + 0.5 * Math.abs(x));
        double y = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - y : y - 1;
    }
}
