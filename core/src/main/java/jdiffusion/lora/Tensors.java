package jdiffusion.lora;

/** The small dense products LoRA variants are built from; row-major float arrays, accumulated in double. */
final class Tensors {
    private Tensors() {
    }

    /** Product of dims[from..]. */
    static int numel(int[] dims, int from) {
        int n = 1;
        for (int i = from; i < dims.length; i++) {
            n = Math.multiplyExact(n, dims[i]);
        }
        return n;
    }

    /** a [m,k] @ b [k,n]. */
    static float[] matmul(float[] a, float[] b, int m, int k, int n) {
        float[] out = new float[m * n];
        double[] row = new double[n];
        for (int i = 0; i < m; i++) {
            java.util.Arrays.fill(row, 0);
            for (int p = 0; p < k; p++) {
                double av = a[i * k + p];
                int bo = p * n;
                for (int j = 0; j < n; j++) {
                    row[j] += av * b[bo + j];
                }
            }
            for (int j = 0; j < n; j++) {
                out[i * n + j] = (float) row[j];
            }
        }
        return out;
    }

    /**
     * A Tucker core contracted with the factor on its second index: out[i, c, s] = sum_j t[i, j, s] * b[j, c], for
     * t [R1, R2, spatial...] and b [R2, C] (trailing 1x1 dims allowed). Result [R1, C * spatial].
     */
    static float[] tuckerCore(float[] t, int[] tDims, float[] b, int[] bDims) {
        int r1 = tDims[0];
        int r2 = tDims[1];
        int spatial = numel(tDims, 2);
        int c = numel(bDims, 1);
        float[] out = new float[r1 * c * spatial];
        for (int i = 0; i < r1; i++) {
            for (int ci = 0; ci < c; ci++) {
                for (int s = 0; s < spatial; s++) {
                    double acc = 0;
                    for (int j = 0; j < r2; j++) {
                        acc += (double) t[(i * r2 + j) * spatial + s] * b[j * c + ci];
                    }
                    out[(i * c + ci) * spatial + s] = (float) acc;
                }
            }
        }
        return out;
    }

    /**
     * The LyCORIS Tucker rebuild einsum("i j k l, j r, i p -> p r k l", t, b, a): t [R1, R2, kh, kw], b [R2, in],
     * a [R1, out]; result [out, in * kh * kw].
     */
    static float[] tucker(float[] t, int[] tDims, float[] b, int[] bDims, float[] a, int[] aDims) {
        float[] core = tuckerCore(t, tDims, b, bDims);
        int r1 = tDims[0];
        int p = aDims[1];
        int inner = core.length / r1;
        float[] out = new float[p * inner];
        for (int pi = 0; pi < p; pi++) {
            for (int k = 0; k < inner; k++) {
                double acc = 0;
                for (int i = 0; i < r1; i++) {
                    acc += (double) a[i * p + pi] * core[i * inner + k];
                }
                out[pi * inner + k] = (float) acc;
            }
        }
        return out;
    }

    /**
     * Kronecker product of w1 [a1, b1] and w2 [a2, b2], result [a1*a2, b1*b2]. With w2 a conv kernel flattened to
     * [a2, in2*kh*kw] this equals torch.kron of w1[..., None, None] and the 4-D kernel, flattened.
     */
    static float[] kron(float[] w1, int a1, int b1, float[] w2, int a2, int b2) {
        int cols = b1 * b2;
        float[] out = new float[a1 * a2 * cols];
        for (int i1 = 0; i1 < a1; i1++) {
            for (int i2 = 0; i2 < a2; i2++) {
                int row = (i1 * a2 + i2) * cols;
                for (int j1 = 0; j1 < b1; j1++) {
                    float v = w1[i1 * b1 + j1];
                    for (int j2 = 0; j2 < b2; j2++) {
                        out[row + j1 * b2 + j2] = v * w2[i2 * b2 + j2];
                    }
                }
            }
        }
        return out;
    }
}
