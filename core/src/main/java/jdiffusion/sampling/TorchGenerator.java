package jdiffusion.sampling;

/**
 * PyTorch's CPU generator: mt19937 plus torch's normal-distribution transforms, so that
 * {@code new TorchGenerator(seed).randn(n)} equals {@code torch.randn(n, generator=torch.manual_seed(seed))} bit for
 * bit (float32, as built for AVX2 CPUs), and consecutive calls continue the same stream as consecutive torch calls on
 * one generator.
 *
 * <p>Two paths, as in torch: numel >= 16 fills 24-bit uniforms and transforms blocks of 16 with a float32 Box-Muller
 * whose log/sin/cos are the avx_mathfun polynomials (with the FMA contractions the compiler makes); numel < 16 (and
 * every float64 draw below 16) uses the scalar double Box-Muller that caches its second value.
 */
public final class TorchGenerator {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;

    private final long seed;
    private final int[] state = new int[N];
    private int next = N;
    /** torch keeps the sine half of a scalar double Box-Muller pair for the next scalar draw. */
    private double cachedNormal;
    private boolean hasCachedNormal;

    /** A generator as {@code torch.Generator().manual_seed(seed)}: only the low 32 bits of the seed matter. */
    public TorchGenerator(long seed) {
        this.seed = seed;
        state[0] = (int) seed;
        for (int j = 1; j < N; j++) {
            int prev = state[j - 1];
            state[j] = 1812433253 * (prev ^ (prev >>> 30)) + j;
        }
    }

    /** The seed this generator was created with (as given, before truncation). */
    public long seed() {
        return seed;
    }

    /** {@code torch.randn(n, generator=torch.manual_seed(seed))} in one call. */
    public static float[] randn(long seed, int n) {
        return new TorchGenerator(seed).randn(n);
    }

    /** Next raw 32-bit output of mt19937 (as an unsigned value in an int). */
    public int nextInt() {
        if (next >= N) {
            twist();
        }
        int y = state[next++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    /** torch's random64(): the first 32-bit draw is the high half. */
    public long nextLong() {
        long hi = Integer.toUnsignedLong(nextInt());
        long lo = Integer.toUnsignedLong(nextInt());
        return (hi << 32) | lo;
    }

    /** A float uniform in [0, 1) with 24 random bits, as torch's uniform_real_distribution&lt;float&gt;. */
    public float nextFloat() {
        return (nextInt() & 0xFFFFFF) * 0x1p-24f;
    }

    /** A double uniform in [0, 1) with 53 random bits, as torch's uniform_real_distribution&lt;double&gt;. */
    public double nextDouble() {
        return (nextLong() & ((1L << 53) - 1)) * 0x1p-53;
    }

    private void twist() {
        for (int k = 0; k < N; k++) {
            int y = (state[k] & UPPER_MASK) | (state[(k + 1) % N] & LOWER_MASK);
            state[k] = state[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
        }
        next = 0;
    }

    /** n standard normal float32 values, as {@code torch.randn(n, generator=this)}. */
    public float[] randn(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("randn size must be >= 0, got " + n);
        }
        float[] out = new float[n];
        if (n >= 16) {
            fillNormal16(out);
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = (float) scalarNormal();
            }
        }
        return out;
    }

    /** n standard normal float64 values, as {@code torch.randn(n, dtype=torch.float64, generator=this)}. */
    public double[] randnDouble(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("randn size must be >= 0, got " + n);
        }
        double[] out = new double[n];
        if (n >= 16) {
            for (int i = 0; i < n; i++) {
                out[i] = nextDouble();
            }
            for (int i = 0; i + 16 <= n; i += 16) {
                boxMuller16(out, i);
            }
            if (n % 16 != 0) {
                // torch redraws the tail: 16 fresh uniforms over the last 16 slots, transformed again
                for (int i = n - 16; i < n; i++) {
                    out[i] = nextDouble();
                }
                boxMuller16(out, n - 16);
            }
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = scalarNormal();
            }
        }
        return out;
    }

    /** torch's normal_distribution&lt;double&gt;: u1 gives the angle, u2 the radius; the sine half is cached. */
    private double scalarNormal() {
        if (hasCachedNormal) {
            hasCachedNormal = false;
            return cachedNormal;
        }
        double u1 = nextDouble();
        double u2 = nextDouble();
        double r = Math.sqrt(-2.0 * Math.log1p(-u2));
        double theta = 2.0 * Math.PI * u1;
        cachedNormal = r * Math.sin(theta);
        hasCachedNormal = true;
        return r * Math.cos(theta);
    }

    private void fillNormal16(float[] out) {
        int n = out.length;
        for (int i = 0; i < n; i++) {
            out[i] = nextFloat();
        }
        for (int i = 0; i + 16 <= n; i += 16) {
            boxMuller16(out, i);
        }
        if (n % 16 != 0) {
            for (int i = n - 16; i < n; i++) {
                out[i] = nextFloat();
            }
            boxMuller16(out, n - 16);
        }
    }

    private static final float TWO_PI_F = (float) (2.0 * Math.PI);

    /** One AVX2 block: slots j and j+8 become radius*cos and radius*sin of the pair (u[j], u[j+8]). */
    private static void boxMuller16(float[] d, int off) {
        float[] sc = new float[2];
        for (int j = 0; j < 8; j++) {
            float u1 = 1.0f - d[off + j];
            float u2 = d[off + j + 8];
            float radius = (float) Math.sqrt(-2.0f * AvxMath.log(u1));
            float theta = TWO_PI_F * u2;
            AvxMath.sincos(theta, sc);
            d[off + j] = radius * sc[1];
            d[off + j + 8] = radius * sc[0];
        }
    }

    private static void boxMuller16(double[] d, int off) {
        for (int j = 0; j < 8; j++) {
            double u1 = 1.0 - d[off + j];
            double u2 = d[off + j + 8];
            double radius = Math.sqrt(-2.0 * Math.log(u1));
            double theta = 2.0 * Math.PI * u2;
            d[off + j] = radius * Math.cos(theta);
            d[off + j + 8] = radius * Math.sin(theta);
        }
    }
}
