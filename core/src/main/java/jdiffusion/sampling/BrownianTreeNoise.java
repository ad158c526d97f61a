package jdiffusion.sampling;

import java.util.LinkedHashMap;
import java.util.Map;
import jdiffusion.tensor.Parallel;

/**
 * The noise source of ComfyUI's SDE samplers (its BrownianTreeNoiseSampler over torchsde's BrownianTree), with the
 * same statistics but not torchsde's bits: a Brownian motion W on [t0, t1] = [smallest positive sigma, largest
 * sigma] with W(t0) = 0, built as a Brownian-bridge bisection tree. Every node's midpoint value comes from its own
 * deterministic random stream (seeded from the KSampler seed, the depth and the position), so W(t) is the same
 * whenever and in whatever order it is asked for; increments over disjoint intervals are independent and have
 * variance equal to their length. A query {@code next(sigma, sigmaNext)} returns
 * {@code (W(sigmaNext) - W(sigma)) / sqrt(|sigmaNext - sigma|)}, a standard normal tensor.
 *
 * <p>Below the resolution tol the bridge is interpolated linearly (torchsde stops bisecting at its tol too).
 */
public final class BrownianTreeNoise implements NoiseSource {
    /** torchsde's default tolerance in time units. */
    public static final double TOL = 1e-6;
    private static final int MAX_DEPTH = 60;
    private static final int CACHE_NODES = 128;

    /** ComfyUI's rule: entropy = the KSampler seed (not seed + 1), t0 = min positive sigma, t1 = max sigma. */
    public static final NoiseSource.Factory FACTORY = BrownianTreeNoise::forSchedule;

    private final long seed;
    private final int size;
    private final double t0;
    private final double t1;
    private final double[] w1;
    private final int maxDepth;
    /** Midpoint values by node, most recently used last: consecutive queries share most of their path. */
    private final Map<Long, double[]> cache = new LinkedHashMap<>(CACHE_NODES * 2, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, double[]> eldest) {
            return size() > CACHE_NODES;
        }
    };

    public BrownianTreeNoise(long seed, int size, double t0, double t1) {
        if (!(t0 < t1) || !Double.isFinite(t0) || !Double.isFinite(t1)) {
            throw new IllegalArgumentException("Brownian tree needs finite t0 < t1, got " + t0 + ", " + t1);
        }
        this.seed = seed;
        this.size = size;
        this.t0 = t0;
        this.t1 = t1;
        this.maxDepth = Math.min(MAX_DEPTH, Math.max(1, (int) Math.ceil(Math.log((t1 - t0) / TOL) / Math.log(2))));
        this.w1 = normals(-1, 0, Math.sqrt(t1 - t0));
    }

    /** The tree for a schedule: spans its smallest positive and largest sigma (a tiny span when they coincide). */
    public static BrownianTreeNoise forSchedule(long seed, int size, double[] sigmas) {
        double min = Double.POSITIVE_INFINITY;
        double max = 0;
        for (double s : sigmas) {
            if (s > 0) {
                min = Math.min(min, s);
                max = Math.max(max, s);
            }
        }
        if (!(min < max)) {
            // one positive level: no interval is ever asked for, but the tree must still exist
            min = min == Double.POSITIVE_INFINITY ? 0.0 : min;
            max = min + 1.0;
        }
        return new BrownianTreeNoise(seed, size, min, max);
    }

    @Override
    public float[] next(double sigma, double sigmaNext) {
        double[] a = w(sigma);
        double[] b = w(sigmaNext);
        double scale = 1.0 / Math.sqrt(Math.abs(sigmaNext - sigma));
        float[] out = new float[size];
        for (int i = 0; i < size; i++) {
            out[i] = (float) ((b[i] - a[i]) * scale);
        }
        return out;
    }

    /** W(t), with t clamped to [t0, t1]. */
    public double[] w(double t) {
        if (!(t > t0)) {
            return new double[size];
        }
        if (t >= t1) {
            return w1.clone();
        }
        double a = t0;
        double b = t1;
        double[] wa = new double[size];
        double[] wb = w1;
        long index = 0;
        for (int depth = 0; depth < maxDepth; depth++) {
            double mid = a + (b - a) * 0.5;
            double[] wm = midpoint(depth, index, wa, wb, b - a);
            if (t == mid) {
                return wm.clone();
            }
            if (t < mid) {
                b = mid;
                wb = wm;
                index = index * 2;
            } else {
                a = mid;
                wa = wm;
                index = index * 2 + 1;
            }
        }
        // finer than tol: linear interpolation of the bridge between the two leaf ends
        double f = (t - a) / (b - a);
        double[] out = new double[size];
        for (int i = 0; i < size; i++) {
            out[i] = wa[i] + (wb[i] - wa[i]) * f;
        }
        return out;
    }

    /** Brownian bridge at the middle of [a, b]: mean of the ends plus N(0, (b - a) / 4). */
    private double[] midpoint(int depth, long index, double[] wa, double[] wb, double length) {
        long key = ((long) depth << 58) ^ index;
        double[] cached = cache.get(key);
        if (cached != null) {
            return cached;
        }
        double[] wm = normals(depth, index, Math.sqrt(length / 4));
        int chunks = (size + CHUNK - 1) / CHUNK;
        Parallel.forRange(chunks, c -> {
            for (int i = c * CHUNK, end = Math.min(size, i + CHUNK); i < end; i++) {
                wm[i] += 0.5 * (wa[i] + wb[i]);
            }
        });
        cache.put(key, wm);
        return wm;
    }

    /** Elements per independent stream: chunks are filled in parallel, the values do not depend on the threads. */
    private static final int CHUNK = 4096;

    /** size independent N(0, std^2) values from the streams of node (depth, index), one stream per chunk. */
    private double[] normals(int depth, long index, double std) {
        long nodeSeed = mix(mix(seed ^ 0x6a09e667f3bcc909L) + mix(depth + 0x3c6ef372fe94f82bL) * 31 + index);
        double[] out = new double[size];
        int chunks = (size + CHUNK - 1) / CHUNK;
        Parallel.forRange(chunks, c -> fillChunk(out, c * CHUNK, Math.min(size, (c + 1) * CHUNK),
                mix(nodeSeed + mix(c + 0x510e527fade682d1L)), std));
        return out;
    }

    /** Box-Muller pairs from a SplitMix64 stream. */
    private static void fillChunk(double[] out, int from, int to, long state, double std) {
        for (int i = from; i < to; i += 2) {
            state += 0x9e3779b97f4a7c15L;
            double u1 = ((mix(state) >>> 11) + 1) * 0x1p-53; // (0, 1]
            state += 0x9e3779b97f4a7c15L;
            double u2 = (mix(state) >>> 11) * 0x1p-53;
            double r = Math.sqrt(-2.0 * Math.log(u1)) * std;
            double theta = 2.0 * Math.PI * u2;
            out[i] = r * Math.cos(theta);
            if (i + 1 < to) {
                out[i + 1] = r * Math.sin(theta);
            }
        }
    }

    /** SplitMix64's finaliser: a bijective 64-bit mix. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    public double t0() {
        return t0;
    }

    public double t1() {
        return t1;
    }
}
