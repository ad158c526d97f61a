package jdiffusion.bench;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import jdiffusion.io.DType;
import jdiffusion.io.Weights;
import jdiffusion.model.UNetConfig;

/**
 * A full-size random ControlNet for a UNet, made in memory (for benchmarks): the UNet's own encoder tensors
 * (time and label embeddings, input blocks, middle block) plus the hint encoder (3 -> 16, 16, 32, 32, 96, 96, 256 ->
 * model channels, as every SD ControlNet), one 1x1 zero conv per skip and the middle-block projection, all fp16.
 */
public final class RandomControlNetWeights implements Weights {
    private static final int[] HINT = {16, 16, 32, 32, 96, 96, 256};

    private final Weights unet;
    private final Map<String, int[]> extra = new LinkedHashMap<>();
    private final Set<String> names = new java.util.LinkedHashSet<>();
    private final long seed;

    private RandomControlNetWeights(Weights unet, long seed) {
        this.unet = unet;
        this.seed = seed;
    }

    public static RandomControlNetWeights of(Weights unet, UNetConfig c, long seed) {
        RandomControlNetWeights w = new RandomControlNetWeights(unet, seed);
        for (String n : unet.names()) {
            if (n.startsWith("time_embed.") || n.startsWith("label_emb.") || n.startsWith("input_blocks.")
                    || n.startsWith("middle_block.")) {
                w.names.add(n);
            }
        }
        int in = 3;
        for (int i = 0; i <= HINT.length; i++) {
            int out = i < HINT.length ? HINT[i] : c.modelChannels();
            w.put("input_hint_block." + 2 * i + ".weight", out, in, 3, 3);
            w.put("input_hint_block." + 2 * i + ".bias", out);
            in = out;
        }
        int skip = 0;
        w.zero(skip++, c.modelChannels());
        for (int level = 0; level < c.levels(); level++) {
            for (int j = 0; j < c.numResBlocks(); j++) {
                w.zero(skip++, c.channels(level));
            }
            if (level < c.levels() - 1) {
                w.zero(skip++, c.channels(level));
            }
        }
        int mid = c.channels(c.levels() - 1);
        w.put("middle_block_out.0.weight", mid, mid, 1, 1);
        w.put("middle_block_out.0.bias", mid);
        return w;
    }

    private void zero(int i, int ch) {
        put("zero_convs." + i + ".0.weight", ch, ch, 1, 1);
        put("zero_convs." + i + ".0.bias", ch);
    }

    private void put(String name, int... shape) {
        extra.put(name, shape);
        names.add(name);
    }

    @Override
    public Set<String> names() {
        return names;
    }

    @Override
    public boolean has(String name) {
        return names.contains(name);
    }

    @Override
    public int[] shape(String name) {
        int[] s = extra.get(name);
        return s != null ? s.clone() : unet.shape(name);
    }

    @Override
    public DType dtype(String name) {
        return extra.containsKey(name) ? DType.F16 : unet.dtype(name);
    }

    @Override
    public float[] get(String name) {
        int[] s = extra.get(name);
        if (s == null) {
            return unet.get(name);
        }
        float[] x = new float[Arrays.stream(s).reduce(1, (a, b) -> a * b)];
        SplittableRandom r = new SplittableRandom(seed ^ name.hashCode());
        for (int i = 0; i < x.length; i++) {
            x[i] = Float.float16ToFloat(Float.floatToFloat16((float) (r.nextGaussian() * 0.02)));
        }
        return x;
    }
}
