package jdiffusion.tensor;

/** A 2-D convolution on NHWC activations; weights [out][in][kh][kw] are packed once at construction. */
public final class Conv2d {
    private final float[] weight;
    private final float[] bias;
    private final int out;
    private final int in;
    private final int kh;
    private final int kw;
    private final int stride;
    private final int padTop;
    private final int padLeft;
    private final int padBottom;
    private final int padRight;

    private Conv2d(float[] weight, float[] bias, int out, int in, int kh, int kw, int stride, int padTop, int padLeft,
                   int padBottom, int padRight) {
        this.weight = weight;
        this.bias = bias;
        this.out = out;
        this.in = in;
        this.kh = kh;
        this.kw = kw;
        this.stride = stride;
        this.padTop = padTop;
        this.padLeft = padLeft;
        this.padBottom = padBottom;
        this.padRight = padRight;
    }

    /** Square kernel k, same padding on every side. */
    public static Conv2d of(float[] weight, float[] bias, int out, int in, int k, int stride, int pad) {
        return of(weight, bias, out, in, k, k, stride, pad, pad, pad, pad);
    }

    public static Conv2d of(float[] weight, float[] bias, int out, int in, int kh, int kw, int stride, int padTop,
                            int padLeft, int padBottom, int padRight) {
        if (weight.length != out * in * kh * kw) {
            throw new IllegalArgumentException("conv weight has " + weight.length + " values, expected " + out + "x" + in + "x" + kh + "x" + kw);
        }
        if (bias != null && bias.length != out) {
            throw new IllegalArgumentException("conv bias has " + bias.length + " values, expected " + out);
        }
        return new Conv2d(weight, bias, out, in, kh, kw, stride, padTop, padLeft, padBottom, padRight);
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    public int outH(int h) {
        return (h + padTop + padBottom - kh) / stride + 1;
    }

    public int outW(int w) {
        return (w + padLeft + padRight - kw) / stride + 1;
    }

    /** x is [batch][h][w][in]; returns [batch][outH(h)][outW(w)][out]. */
    public float[] forward(float[] x, int batch, int h, int w) {
        return Reference.conv2d(x, batch, h, w, in, weight, bias, out, kh, kw, stride, padTop, padLeft, padBottom, padRight);
    }
}
