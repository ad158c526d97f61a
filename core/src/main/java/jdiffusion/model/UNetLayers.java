package jdiffusion.model;

import jdiffusion.tensor.Ops;

/** Small value types shared by the UNet and the VAE: an NHWC feature map and the two normalisations. */
final class UNetLayers {
    private UNetLayers() {
    }

    /** A batch of feature maps, NHWC: data is [batch][h][w][c]. */
    record Feature(float[] data, int batch, int h, int w, int c) {
        Feature {
            if (data.length != (long) batch * h * w * c) {
                throw new IllegalArgumentException("feature map holds " + data.length + " values, expected "
                        + batch + "x" + h + "x" + w + "x" + c);
            }
        }

        int pixels() {
            return h * w;
        }

        /** Rows of the tokens x channels view: every pixel of every image. */
        int rows() {
            return batch * h * w;
        }

        Feature with(float[] newData, int newC) {
            return new Feature(newData, batch, h, w, newC);
        }
    }

    /** GroupNorm over consecutive channel groups with affine gamma/beta, optionally followed by SiLU. */
    record GroupNorm(float[] gamma, float[] beta, int channels, int groups, float eps) {
        float[] apply(Feature x, boolean silu) {
            if (x.c() != channels) {
                throw new IllegalArgumentException("group norm over " + channels + " channels got " + x.c());
            }
            return Ops.groupNorm(x.data(), x.batch(), x.pixels(), channels, groups, gamma, beta, eps, silu);
        }
    }

    /** LayerNorm over the channels of every row. */
    record LayerNorm(float[] gamma, float[] beta, int channels, float eps) {
        float[] apply(float[] x, int rows) {
            return Ops.layerNorm(x, rows, channels, gamma, beta, eps);
        }
    }
}
