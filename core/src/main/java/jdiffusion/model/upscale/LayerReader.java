package jdiffusion.model.upscale;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.DType;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.UpsampleConv;
import jdiffusion.tensor.WeightFormat;

/**
 * Reads an upscaler's layers under canonical names (see {@link UpscaleLayouts}), checking every shape, and
 * remembers which file tensors were used so that a tensor the architecture has no place for is reported.
 */
final class LayerReader {
    private final Weights weights;
    /** canonical name -> name in the file. */
    private final Map<String, String> names;
    private final Set<String> used = new HashSet<>();

    LayerReader(Weights weights, Map<String, String> names) {
        this.weights = weights;
        this.names = names;
    }

    boolean has(String name) {
        return names.containsKey(name);
    }

    int[] shape(String name) {
        String f = names.get(name);
        if (f == null) {
            throw new IllegalStateException("missing tensor '" + name + "'");
        }
        return weights.shape(f);
    }

    float[] get(String name, int... expected) {
        int[] s = shape(name);
        if (!Arrays.equals(s, expected)) {
            throw new IllegalStateException("tensor '" + names.get(name) + "' has shape " + Arrays.toString(s)
                    + ", expected " + Arrays.toString(expected));
        }
        used.add(names.get(name));
        return weights.get(names.get(name));
    }

    /** [out, in, k, k] of conv prefix, checked against in (and k when k > 0). */
    int[] convShape(String prefix, int in, int k) {
        int[] s = shape(prefix + ".weight");
        if (s.length != 4 || s[1] != in || s[2] != s[3] || (k > 0 && s[2] != k) || s[2] % 2 == 0) {
            throw new IllegalStateException("tensor '" + names.get(prefix + ".weight") + "' has shape "
                    + Arrays.toString(s) + ", expected a conv weight [out, " + in + ", " + (k > 0 ? k : "k") + ", "
                    + (k > 0 ? k : "k") + "]");
        }
        return s;
    }

    /** A "same" convolution (odd square kernel, stride 1) kept in the 16 bits the file stores, else float32. */
    Conv2d conv(String prefix, int in) {
        int[] s = convShape(prefix, in, 0);
        float[] w = get(prefix + ".weight", s);
        float[] b = has(prefix + ".bias") ? get(prefix + ".bias", s[0]) : null;
        return Conv2d.of(w, b, s[0], in, s[2], 1, s[2] / 2, format(prefix + ".weight"));
    }

    /** Nearest 2x upsampling fused with the 3x3 convolution that follows it. */
    UpsampleConv upsampleConv(String prefix, int in) {
        int[] s = convShape(prefix, in, 3);
        float[] w = get(prefix + ".weight", s);
        float[] b = has(prefix + ".bias") ? get(prefix + ".bias", s[0]) : null;
        return UpsampleConv.of(w, b, s[0], in);
    }

    private WeightFormat format(String name) {
        DType t = weights.dtype(names.get(name));
        return switch (t) {
            case F16 -> WeightFormat.F16;
            case BF16 -> WeightFormat.BF16;
            default -> WeightFormat.F32;
        };
    }

    /** Fails naming a file tensor that no layer read. */
    void requireAllUsed(String architecture) {
        for (String n : names.values()) {
            if (!used.contains(n)) {
                throw new IllegalStateException("unexpected tensor '" + n + "' for " + architecture
                        + " (a variant this build does not know)");
            }
        }
    }
}
