package jdiffusion.model;

import java.util.Arrays;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.WeightFormat;

/**
 * Reads the layers of the UNet and the VAE out of {@link Weights}, checking every shape against what the
 * architecture needs, so a file that does not fit fails at load with the tensor's name and shape, not with an
 * index error in the middle of a forward pass.
 */
final class UNetTensors {
    private final Weights weights;

    UNetTensors(Weights weights) {
        this.weights = weights;
    }

    /** A tensor does not fit the architecture (or is missing); the message names it. */
    static final class BadTensorException extends IllegalStateException {
        BadTensorException(String message) {
            super(message);
        }
    }

    java.util.Set<String> names() {
        return weights.names();
    }

    boolean has(String name) {
        return weights.has(name);
    }

    int[] shape(String name) {
        if (!weights.has(name)) {
            throw new BadTensorException("missing tensor '" + name + "'");
        }
        return weights.shape(name);
    }

    /** The values of a tensor whose shape must be exactly expected. */
    float[] get(String name, int... expected) {
        int[] s = shape(name);
        if (!Arrays.equals(s, expected)) {
            throw new BadTensorException("tensor '" + name + "' has shape " + Arrays.toString(s) + ", expected "
                    + Arrays.toString(expected));
        }
        return weights.get(name);
    }

    /** Output width of a linear layer (or 1x1 conv) named prefix. */
    int outWidth(String prefix) {
        return shape(prefix + ".weight")[0];
    }

    /** Input width of a linear layer (or conv) named prefix. */
    int inWidth(String prefix) {
        return shape(prefix + ".weight")[1];
    }

    /**
     * A linear layer with input width in; accepts [out,in] Linear weights and [out,in,1,1] 1x1 conv weights
     * (the same numbers: on NHWC activations a 1x1 convolution is a linear layer). The bias is optional.
     */
    Linear linear(String prefix, int in) {
        String wn = prefix + ".weight";
        int[] s = shape(wn);
        boolean oneByOne = s.length == 4 && s[2] == 1 && s[3] == 1;
        if (!(s.length == 2 || oneByOne) || s[1] != in) {
            throw new BadTensorException("tensor '" + wn + "' has shape " + Arrays.toString(s)
                    + ", expected a linear weight [out, " + in + "]");
        }
        int out = s[0];
        float[] w = weights.get(wn);
        float[] b = has(prefix + ".bias") ? get(prefix + ".bias", out) : null;
        return Linear.of(w, b, out, in, storage(weights, wn));
    }

    /** How a layer keeps the weights of tensor name ({@link LayerWeights#storage}). */
    static WeightFormat storage(Weights weights, String name) {
        return LayerWeights.storage(weights.dtype(name));
    }

    /** A convolution with a square kernel read from the weight shape, input channels in, the given stride and pads. */
    Conv2d conv(String prefix, int in, int stride, int padTop, int padLeft, int padBottom, int padRight) {
        String wn = prefix + ".weight";
        int[] s = convShape(wn, in, 0);
        float[] w = weights.get(wn);
        float[] b = has(prefix + ".bias") ? get(prefix + ".bias", s[0]) : null;
        return Conv2d.of(w, b, s[0], in, s[2], s[3], stride, padTop, padLeft, padBottom, padRight,
                storage(weights, wn));
    }

    /** The shape [out, in, kh, kw] of a conv weight, checked; a kernel size k > 0 must be k x k. */
    private int[] convShape(String wn, int in, int k) {
        int[] s = shape(wn);
        if (s.length != 4 || s[1] != in || k > 0 && (s[2] != k || s[3] != k)) {
            String kernel = k > 0 ? k + ", " + k : "kh, kw";
            throw new BadTensorException("tensor '" + wn + "' has shape " + Arrays.toString(s)
                    + ", expected a conv weight [out, " + in + ", " + kernel + "]");
        }
        return s;
    }

    /** Nearest 2x upsampling and a 3x3 "same" convolution, fused (see UpsampleConv). */
    jdiffusion.tensor.UpsampleConv upsampleConv(String prefix, int in) {
        String wn = prefix + ".weight";
        int[] s = convShape(wn, in, 3);
        float[] b = has(prefix + ".bias") ? get(prefix + ".bias", s[0]) : null;
        return jdiffusion.tensor.UpsampleConv.of(weights.get(wn), b, s[0], in);
    }

    /** A 3x3 "same" convolution (pad 1) with stride 1. */
    Conv2d conv3x3(String prefix, int in) {
        return conv(prefix, in, 1, 1, 1, 1, 1);
    }

    UNetLayers.GroupNorm groupNorm(String prefix, int channels, int groups, float eps) {
        if (channels % groups != 0) {
            throw new BadTensorException("tensor '" + prefix + ".weight': " + channels
                    + " channels cannot be split into " + groups + " groups");
        }
        return new UNetLayers.GroupNorm(get(prefix + ".weight", channels), get(prefix + ".bias", channels), channels,
                groups, eps);
    }

    UNetLayers.LayerNorm layerNorm(String prefix, int channels, float eps) {
        return new UNetLayers.LayerNorm(get(prefix + ".weight", channels), get(prefix + ".bias", channels), channels,
                eps);
    }

    /** How many numbered children prefix.0, prefix.1, ... exist (a name starts with "prefix.k."). */
    int countChildren(String prefix) {
        int n = 0;
        while (hasChild(prefix + "." + n)) {
            n++;
        }
        return n;
    }

    /** Whether any tensor lives under prefix (its name starts with "prefix."). */
    boolean hasChild(String prefix) {
        String p = prefix + ".";
        for (String name : weights.names()) {
            if (name.startsWith(p)) {
                return true;
            }
        }
        return false;
    }

    /** The first tensor name ending with suffix, or null. */
    String firstEndingWith(String suffix) {
        for (String name : weights.names()) {
            if (name.endsWith(suffix)) {
                return name;
            }
        }
        return null;
    }
}
