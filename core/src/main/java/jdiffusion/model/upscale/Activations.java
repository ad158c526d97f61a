package jdiffusion.model.upscale;

import jdiffusion.tensor.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** The upscalers' elementwise steps, vectorised and split over the thread pool in blocks. */
final class Activations {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int BLOCK = 1 << 14;

    private Activations() {
    }

    private interface Span {
        void run(int from, int to);
    }

    private static void blocks(int n, Span body) {
        int count = (n + BLOCK - 1) / BLOCK;
        if (count <= 1) {
            body.run(0, n);
            return;
        }
        Parallel.forRange(count, b -> body.run(b * BLOCK, Math.min(n, (b + 1) * BLOCK)));
    }

    /** x = x >= 0 ? x : slope * x (slope in [0, 1]: max(x, slope * x)). */
    static void leakyRelu(float[] x, float slope) {
        blocks(x.length, (from, to) -> {
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += S.length()) {
                FloatVector v = FloatVector.fromArray(S, x, i);
                v.max(v.mul(slope)).intoArray(x, i);
            }
            for (; i < to; i++) {
                x[i] = x[i] >= 0 ? x[i] : slope * x[i];
            }
        });
    }

    /** y = y * a + x. */
    static void scaleAdd(float[] y, float a, float[] x) {
        if (y.length != x.length) {
            throw new IllegalArgumentException("length mismatch " + y.length + " vs " + x.length);
        }
        blocks(y.length, (from, to) -> {
            int i = from;
            for (int bound = from + S.loopBound(to - from); i < bound; i += S.length()) {
                FloatVector.fromArray(S, y, i).mul(a).add(FloatVector.fromArray(S, x, i)).intoArray(y, i);
            }
            for (; i < to; i++) {
                y[i] = y[i] * a + x[i];
            }
        });
    }

    /** PReLU on NHWC rows of c channels: x = x >= 0 ? x : slope[c] * x (one slope for all when slope has one value). */
    static void prelu(float[] x, int c, float[] slope) {
        int rows = x.length / c;
        blocks(rows, (from, to) -> {
            for (int r = from; r < to; r++) {
                int o = r * c;
                for (int j = 0; j < c; j++) {
                    float v = x[o + j];
                    if (v < 0) {
                        x[o + j] = v * slope[slope.length == 1 ? 0 : j];
                    }
                }
            }
        });
    }
}
