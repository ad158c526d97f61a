package jdiffusion.tensor;

/** A linear layer y = x W^T + b; weights are packed once at construction for the GEMM kernel. */
public final class Linear {
    private final int out;
    private final int in;
    private final Gemm.PackedB packed;
    private final float[] bias;
    /** The native bf16 kernel when the layer was built under {@link Precision#BF16} and it can run; else null. */
    private final Bf16Linear bf16;
    /** Weights left in a mapped file, packed block by block at each call; else null. */
    private final MappedLinear mapped;

    private Linear(Gemm.PackedB packed, float[] bias, int out, int in) {
        this(packed, bias, out, in, null);
    }

    private Linear(Gemm.PackedB packed, float[] bias, int out, int in, Bf16Linear bf16) {
        this(packed, bias, out, in, bf16, null);
    }

    private Linear(Gemm.PackedB packed, float[] bias, int out, int in, Bf16Linear bf16, MappedLinear mapped) {
        this.mapped = mapped;
        this.bf16 = bf16;
        this.packed = packed;
        this.bias = bias;
        this.out = out;
        this.in = in;
    }

    /** weight is [out][in] row-major (the checkpoint layout); bias may be null. The weight array is not kept. */
    public static Linear of(float[] weight, float[] bias, int out, int in) {
        return of(weight, bias, out, in, WeightFormat.F32);
    }

    /**
     * The same, keeping the weights in the given format (F16/BF16 halve their memory; arithmetic stays fp32). Built
     * under {@link Precision#BF16} (where oneDNN runs) the layer computes in bf16 with bf16 weights whatever the format.
     */
    public static Linear of(float[] weight, float[] bias, int out, int in, WeightFormat format) {
        if (weight.length != out * in) {
            throw new IllegalArgumentException("linear weight has " + weight.length + " values, expected " + out + "x" + in);
        }
        if (bias != null && bias.length != out) {
            throw new IllegalArgumentException("linear bias has " + bias.length + " values, expected " + out);
        }
        if (Precision.nativeBf16Now()) {
            return new Linear(null, null, out, in, new Bf16Linear(weight, bias, out, in));
        }
        Gemm.PackedB packed = Gemm.packWeights(weight, out, in, in, format);
        return new Linear(packed, Gemm.padBias(bias, packed), out, in);
    }

    /**
     * A layer over weights [out][in] that stay in the given bytes (a mapped checkpoint's tensor, little-endian, in
     * the given format): nothing is copied at load, each call packs them block by block ({@link MappedLinear}),
     * bit-identical to {@link #of}. The bytes must stay mapped while the layer is used (a closed file makes the
     * call fail, never read freed memory). Under {@link Precision#BF16} with the native kernels the weights are
     * converted to packed bf16 as in {@link #of}, since oneDNN computes from its own layout.
     */
    public static Linear mapped(java.lang.foreign.MemorySegment weight, WeightFormat format, float[] bias, int out,
                                int in) {
        if (Precision.nativeBf16Now()) {
            return of(new MappedLinear(weight, format, null, out, in).widen(), bias, out, in, format);
        }
        return new Linear(null, null, out, in, null, new MappedLinear(weight, format, bias, out, in));
    }

    /**
     * Whether layers over a mapped file's tensors leave their weights there ({@link #mapped}); true unless
     * {@code -Djdiffusion.mappedWeights=off} (then they are packed into memory at load, as {@link #of} does).
     */
    public static boolean mappedWeights() {
        return !"off".equals(System.getProperty("jdiffusion.mappedWeights"));
    }

    /** Whether the weights stay in a mapped file ({@link #mapped}) rather than in memory of this process. */
    public boolean isMapped() {
        return mapped != null;
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    /** Whether the layer computes on the native bf16 kernel (built under {@link Precision#BF16} where it runs). */
    public boolean nativeBf16() {
        return bf16 != null;
    }

    /** Bytes the packed weights occupy. */
    public long weightBytes() {
        return bf16 != null ? bf16.bytes() : mapped != null ? mapped.bytes() : packed.bytes();
    }

    /** x is [rows][in]; returns [rows][out]. */
    public float[] forward(float[] x, int rows) {
        float[] y = new float[rows * out];
        forward(x, 0, in, rows, y, 0, out, false);
        return y;
    }

    /** y = residual + x W^T + b, computed in place in residual (a transformer's skip connection), which is returned. */
    public float[] forwardAdd(float[] x, int rows, float[] residual) {
        checkLength("residual", residual, rows * out);
        forward(x, 0, in, rows, residual, 0, out, true);
        return residual;
    }

    /**
     * The general form: rows of x at xOff with stride ldx (so a slice of channels can be an input), results into y
     * at yOff with stride ldy; accumulate adds to y instead of overwriting it.
     */
    public void forward(float[] x, int xOff, int ldx, int rows, float[] y, int yOff, int ldy, boolean accumulate) {
        if (ldx < in || ldy < out) {
            throw new IllegalArgumentException("row strides " + ldx + "/" + ldy + " narrower than " + in + "/" + out);
        }
        if (rows > 0) {
            checkLength("input", x, xOff + (rows - 1) * ldx + in);
            checkLength("output", y, yOff + (rows - 1) * ldy + out);
        }
        if (bf16 != null) {
            bf16.forward(x, xOff, ldx, rows, y, yOff, ldy, accumulate);
            return;
        }
        if (mapped != null) {
            mapped.forward(x, xOff, ldx, rows, y, yOff, ldy, accumulate);
            return;
        }
        Gemm.multiply(new Gemm.Dense(x, xOff, ldx), rows, packed, y, yOff, ldy, bias, accumulate);
    }

    private static void checkLength(String what, float[] a, int needed) {
        if (a.length < needed) {
            throw new IllegalArgumentException("linear " + what + " has " + a.length + " values, needs " + needed);
        }
    }
}
