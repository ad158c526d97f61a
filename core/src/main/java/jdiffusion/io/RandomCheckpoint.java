package jdiffusion.io;

import java.nio.file.Path;
import java.util.List;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.model.ModelConfig;

/**
 * Writes a checkpoint with random weights in the real key layout (for benchmarks and memory tests: full-size files
 * without downloading one). Values: normal with std 0.02 (norm scales 1, shifts 0), so a forward pass stays finite.
 * Streamed to disk; the heap holds one chunk.
 */
public final class RandomCheckpoint {
    public static final double STD = 0.02;

    private RandomCheckpoint() {
    }

    /** Writes config's architecture to target in dtype (F16, BF16 or F32); fails if target exists. */
    public static void write(ModelConfig config, Path target, DType dtype, long seed) throws ModelFormatException {
        write(CheckpointKeys.of(config), config.family().name(), target, dtype, seed);
    }

    /** Writes the given tensors (an architecture's key list, e.g. SD3's) with random values; label goes in metadata. */
    public static void write(List<TensorSpec> specs, String label, Path target, DType dtype, long seed)
            throws ModelFormatException {
        SafeTensorsWriter w = SafeTensorsWriter.to(target).metadata("format", "pt")
                .metadata("jdiffusion.random_checkpoint", label + " random weights, seed " + seed);
        long index = 0;
        for (TensorSpec t : specs) {
            long streamSeed = mix(seed, index++);
            switch (t.init()) {
                case POSITION_IDS -> {
                    long[] ids = new long[(int) t.numel()];
                    for (int i = 0; i < ids.length; i++) {
                        ids[i] = i;
                    }
                    w.addLongs(t.name(), t.shape(), ids);
                }
                case ONE -> w.add(t.name(), dtype, t.shape(), constant(1f));
                case ZERO -> w.add(t.name(), dtype, t.shape(), constant(0f));
                case LOGIT_SCALE -> w.add(t.name(), dtype, t.shape(), constant((float) Math.log(1 / 0.07)));
                case NORMAL -> w.add(t.name(), dtype, t.shape(), normal(streamSeed, (float) STD));
            }
        }
        w.write();
    }

    private static SafeTensorsWriter.FloatSource constant(float v) {
        return (start, buf, count) -> java.util.Arrays.fill(buf, 0, count, v);
    }

    /**
     * Approximately normal values, cheap enough for billions of elements: each element sums the four 16-bit lanes of
     * one 64-bit hash (Irwin-Hall, n = 4; variance 4/12 of a unit uniform), keyed by (stream, index) so chunks are
     * independent of the chunk size.
     */
    static SafeTensorsWriter.FloatSource normal(long stream, float std) {
        final float scale = (float) (std / (65536.0 * Math.sqrt(4.0 / 12.0)));
        return (start, buf, count) -> {
            for (int i = 0; i < count; i++) {
                long h = mix(stream, start + i);
                long sum = (h & 0xffff) + ((h >>> 16) & 0xffff) + ((h >>> 32) & 0xffff) + (h >>> 48);
                buf[i] = (sum - 2 * 65535L) * scale;
            }
        };
    }

    /** SplitMix64 finaliser of (a, b): a well-mixed 64-bit value per pair. */
    static long mix(long a, long b) {
        long z = a * 0x9E3779B97F4A7C15L + b + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
