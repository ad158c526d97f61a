package jdiffusion.bench;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.CheckpointKeys;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.io.DType;
import jdiffusion.io.Weights;

/**
 * Full-size random weights made in memory, no file: one component (the tensors of {@link CheckpointKeys#of} under a
 * prefix, named without it). Values as {@link jdiffusion.io.RandomCheckpoint}'s (normal, std 0.02; norm scales 1,
 * shifts 0), generated when a model asks for a tensor, and reported as fp16 so the model stores them in 16 bits like
 * a real fp16 checkpoint's (they are rounded to fp16 values here, so nothing is lost).
 */
public final class RandomWeights implements Weights {
    private static final float STD = 0.02f;

    private final Map<String, TensorSpec> specs = new LinkedHashMap<>();
    private final long seed;

    private RandomWeights(long seed) {
        this.seed = seed;
    }

    /** The tensors of all specs whose names start with prefix, without the prefix. */
    public static RandomWeights of(Iterable<TensorSpec> all, String prefix, long seed) {
        RandomWeights w = new RandomWeights(seed);
        for (TensorSpec t : all) {
            if (t.name().startsWith(prefix)) {
                w.specs.put(t.name().substring(prefix.length()), t);
            }
        }
        if (w.specs.isEmpty()) {
            throw new IllegalArgumentException("no tensors under '" + prefix + "'");
        }
        return w;
    }

    @Override
    public Set<String> names() {
        return specs.keySet();
    }

    @Override
    public boolean has(String name) {
        return specs.containsKey(name);
    }

    @Override
    public int[] shape(String name) {
        return Arrays.stream(spec(name).shape()).mapToInt(Math::toIntExact).toArray();
    }

    @Override
    public DType dtype(String name) {
        return spec(name).init() == CheckpointKeys.Init.POSITION_IDS ? DType.I64 : DType.F16;
    }

    @Override
    public float[] get(String name) {
        TensorSpec t = spec(name);
        float[] x = new float[Math.toIntExact(t.numel())];
        switch (t.init()) {
            case ONE -> Arrays.fill(x, 1f);
            case ZERO, POSITION_IDS -> {
                for (int i = 0; t.init() == CheckpointKeys.Init.POSITION_IDS && i < x.length; i++) {
                    x[i] = i;
                }
            }
            case LOGIT_SCALE -> Arrays.fill(x, (float) Math.log(1 / 0.07));
            case NORMAL -> normal(x, mix(seed, name.hashCode()));
        }
        return x;
    }

    private TensorSpec spec(String name) {
        TensorSpec t = specs.get(name);
        if (t == null) {
            throw new MissingTensorException("random weights: no tensor '" + name + "'");
        }
        return t;
    }

    /** Irwin-Hall approximation of a normal (sum of four 16-bit uniforms of one hash), rounded to fp16. */
    private static void normal(float[] x, long stream) {
        float scale = (float) (STD / (65536.0 * Math.sqrt(4.0 / 12.0)));
        int chunk = 1 << 16;
        // billions of values for SDXL: generated in parallel chunks (each value depends only on its index)
        java.util.stream.IntStream.range(0, (x.length + chunk - 1) / chunk).parallel().forEach(c -> {
            for (int i = c * chunk, end = Math.min(x.length, i + chunk); i < end; i++) {
                long h = mix(stream, i);
                long sum = (h & 0xffff) + ((h >>> 16) & 0xffff) + ((h >>> 32) & 0xffff) + (h >>> 48);
                x[i] = Float.float16ToFloat(Float.floatToFloat16((sum - 2 * 65535L) * scale));
            }
        });
    }

    /** SplitMix64 finaliser of a pair. */
    private static long mix(long a, long b) {
        long z = a * 0x9E3779B97F4A7C15L + b + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
