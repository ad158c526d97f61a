package jdiffusion.tensor;

/**
 * Nearest 2x upsampling followed by a 3x3 convolution (stride 1, padding 1), computed without the upsampled image:
 * output pixel (2y + py, 2x + px) only ever sees input rows y-1..y (py = 0) or y..y+1 (py = 1), and likewise for
 * columns, so each of the four output phases is a 2x2 convolution of the input whose taps are sums of the 3x3 taps
 * (phase py = 0 takes kernel row 0 for input row y-1 and rows 1 + 2 for row y; py = 1 takes rows 0 + 1 for y and
 * row 2 for y+1). That is 16 taps per input pixel instead of 36 per four output pixels (4/9 of the work), and no
 * upsampled copy or padded scratch four times the input's size. The combined taps are kept in 32 bits: sums of
 * 16-bit weights are not 16-bit values.
 */
public final class UpsampleConv {
    /** Phase py * 2 + px. */
    private final Conv2d[] phases;
    private final int in;
    private final int out;

    private UpsampleConv(Conv2d[] phases, int in, int out) {
        this.phases = phases;
        this.in = in;
        this.out = out;
    }

    /** From a 3x3 convolution's weight [out][in][3][3] and bias (length out, or null). */
    public static UpsampleConv of(float[] weight, float[] bias, int out, int in) {
        if (weight.length != out * in * 9) {
            throw new IllegalArgumentException("upsample conv weight has " + weight.length + " values, expected "
                    + out + "x" + in + "x3x3");
        }
        // kernel rows (or columns) folded into tap a of phase p: R[p][a] = {first, last}
        int[][][] fold = {{{0, 0}, {1, 2}}, {{0, 1}, {2, 2}}};
        Conv2d[] phases = new Conv2d[4];
        for (int py = 0; py < 2; py++) {
            for (int px = 0; px < 2; px++) {
                float[] w = new float[out * in * 4];
                for (int oc = 0; oc < out * in; oc++) {
                    for (int a = 0; a < 2; a++) {
                        for (int b = 0; b < 2; b++) {
                            float sum = 0;
                            for (int ky = fold[py][a][0]; ky <= fold[py][a][1]; ky++) {
                                for (int kx = fold[px][b][0]; kx <= fold[px][b][1]; kx++) {
                                    sum += weight[oc * 9 + ky * 3 + kx];
                                }
                            }
                            w[oc * 4 + a * 2 + b] = sum;
                        }
                    }
                }
                phases[py * 2 + px] = Conv2d.of(w, bias, out, in, 2, 2, 1, 1 - py, 1 - px, py, px, WeightFormat.F32);
            }
        }
        return new UpsampleConv(phases, in, out);
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    /** x is [batch][h][w][in]; returns [batch][2h][2w][out]. */
    public float[] forward(float[] x, int batch, int h, int w) {
        if ((long) batch * 4 * h * w * out > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("upsampled output " + batch + "x" + 2 * h + "x" + 2 * w + "x" + out
                    + " is too large for one array");
        }
        float[] y = new float[batch * 4 * h * w * out];
        for (int p = 0; p < 4; p++) {
            int py = p / 2;
            int px = p % 2;
            float[] phase = phases[p].forward(x, batch, h, w);
            Parallel.forRange(batch * h, r -> {
                int b = r / h;
                int iy = r % h;
                for (int ix = 0; ix < w; ix++) {
                    System.arraycopy(phase, ((b * h + iy) * w + ix) * out, y,
                            ((b * 2 * h + 2 * iy + py) * 2 * w + 2 * ix + px) * out, out);
                }
            });
        }
        return y;
    }
}
