package jdiffusion.tensor;

/** A linear layer y = x W^T + b; weights are packed once at construction for the GEMM kernel. */
public final class Linear {
    private final int out;
    private final int in;
    private final float[] weight;
    private final float[] bias;

    private Linear(float[] weight, float[] bias, int out, int in) {
        this.weight = weight;
        this.bias = bias;
        this.out = out;
        this.in = in;
    }

    /** weight is [out][in] row-major (the checkpoint layout); bias may be null. */
    public static Linear of(float[] weight, float[] bias, int out, int in) {
        if (weight.length != out * in) {
            throw new IllegalArgumentException("linear weight has " + weight.length + " values, expected " + out + "x" + in);
        }
        if (bias != null && bias.length != out) {
            throw new IllegalArgumentException("linear bias has " + bias.length + " values, expected " + out);
        }
        return new Linear(weight, bias, out, in);
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    /** x is [rows][in]; returns [rows][out]. */
    public float[] forward(float[] x, int rows) {
        return Reference.linear(x, rows, weight, bias, out, in);
    }
}
