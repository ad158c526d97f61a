package jdiffusion.model.mmdit;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import jdiffusion.tensor.Parallel;

/**
 * The elementwise pieces of a DiT block on token-major rows [batch][tokens][width]: adaLN modulation with one
 * (shift, scale, gate) per image, the gated residual, per-head RMS norm and GELU(tanh). Each runs in float32 in the
 * order torch evaluates it, over row ranges in parallel.
 */
final class TokenOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Rows per parallel task. */
    private static final int CHUNK = 64;

    private TokenOps() {
    }

    interface RowBody {
        void run(int row);
    }

    static void rows(int n, RowBody body) {
        int tasks = (n + CHUNK - 1) / CHUNK;
        Parallel.forRange(tasks, t -> {
            int end = Math.min(n, (t + 1) * CHUNK);
            for (int r = t * CHUNK; r < end; r++) {
                body.run(r);
            }
        });
    }

    /** LayerNorm without affine (eps 1e-6) of every row of width c, into a new array. */
    static float[] layerNorm(float[] x, int c) {
        float[] y = new float[x.length];
        rows(x.length / c, r -> {
            int base = r * c;
            double sum = 0;
            for (int j = 0; j < c; j++) {
                sum += x[base + j];
            }
            float mean = (float) (sum / c);
            double sq = 0;
            for (int j = 0; j < c; j++) {
                double d = x[base + j] - mean;
                sq += d * d;
            }
            float inv = (float) (1.0 / Math.sqrt(sq / c + 1e-6));
            for (int j = 0; j < c; j++) {
                y[base + j] = (x[base + j] - mean) * inv;
            }
        });
        return y;
    }

    /**
     * {@code y * (1 + scale) + shift} for normalised rows y that start at row row0 of a [batch][tokens][c] sequence,
     * with the shift and scale of each row's image taken from chunks shiftIdx and scaleIdx of mod
     * ([batch][chunks * c]); into a new array.
     */
    static float[] modulate(float[] y, int row0, int tokens, int c, float[] mod, int chunks, int shiftIdx,
                            int scaleIdx) {
        int ldm = chunks * c;
        float[] out = new float[y.length];
        rows(y.length / c, r -> {
            int base = r * c;
            int m = (row0 + r) / tokens * ldm;
            int sh = m + shiftIdx * c;
            int sc = m + scaleIdx * c;
            for (int j = 0; j < c; j++) {
                out[base + j] = y[base + j] * (1f + mod[sc + j]) + mod[sh + j];
            }
        });
        return out;
    }

    /** {@link #modulate} of {@link #layerNorm}. */
    static float[] normModulate(float[] x, int row0, int tokens, int c, float[] mod, int chunks, int shiftIdx,
                                int scaleIdx) {
        return modulate(layerNorm(x, c), row0, tokens, c, mod, chunks, shiftIdx, scaleIdx);
    }

    /** x += gate * y, the gate of each row's image from chunk gateIdx of mod. Rows of y start at row0 of x. */
    static void addGated(float[] x, int row0, float[] y, int rows, int tokens, int c, float[] mod, int chunks,
                         int gateIdx) {
        int ldm = chunks * c;
        rows(rows, r -> {
            int xb = (row0 + r) * c;
            int yb = r * c;
            int g = (row0 + r) / tokens * ldm + gateIdx * c;
            for (int j = 0; j < c; j++) {
                x[xb + j] += mod[g + j] * y[yb + j];
            }
        });
    }

    /**
     * Copies one of q/k/v (part 0, 1, 2 of a fused [batch][tokens][3 * c] projection) into dst
     * ([batch][seq][c]) at token offset, RMS-normalising every head of width hd with weight (null: no norm), eps
     * 1e-6: the joint sequence puts the context tokens first, the image tokens after them.
     */
    static void splitHeads(float[] qkv, int tokens, int c, int part, int hd, float[] weight, float[] dst, int seq,
                           int offset) {
        int rows = qkv.length / (3 * c);
        rows(rows, r -> {
            int src = r * 3 * c + part * c;
            int d = (r / tokens * seq + offset + r % tokens) * c;
            if (weight == null) {
                System.arraycopy(qkv, src, dst, d, c);
                return;
            }
            for (int h0 = 0; h0 < c; h0 += hd) {
                double sq = 0;
                for (int j = 0; j < hd; j++) {
                    float v = qkv[src + h0 + j];
                    sq += v * v;
                }
                float inv = (float) (1.0 / Math.sqrt((float) (sq / hd) + 1e-6f));
                for (int j = 0; j < hd; j++) {
                    dst[d + h0 + j] = qkv[src + h0 + j] * inv * weight[j];
                }
            }
        });
    }

    /** GELU with the tanh approximation (PyTorch approximate="tanh"), in place. */
    static void geluTanh(float[] x, int width) {
        int rows = x.length / width;
        float k0 = (float) Math.sqrt(2.0 / Math.PI);
        float k1 = 0.044715f;
        rows(rows, r -> {
            int base = r * width;
            int bound = S.loopBound(width);
            int j = 0;
            for (; j < bound; j += S.length()) {
                FloatVector v = FloatVector.fromArray(S, x, base + j);
                FloatVector inner = v.mul(v).mul(v).mul(k1).add(v).mul(k0);
                FloatVector t = inner.lanewise(VectorOperators.TANH);
                v.mul(0.5f).mul(t.add(1f)).intoArray(x, base + j);
            }
            for (; j < width; j++) {
                float v = x[base + j];
                float t = (float) Math.tanh(k0 * (v + k1 * v * v * v));
                x[base + j] = 0.5f * v * (1f + t);
            }
        });
    }

    /** SiLU of every value, into a new array. */
    static float[] silu(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] / (1f + (float) Math.exp(-x[i]));
        }
        return y;
    }
}
