package jdiffusion.model;

import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * Small pieces shared by the UNet, its ControlNet copy and the VAE: an NHWC feature map, a convolution over it, the
 * two normalisations and the timestep embedding.
 */
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

        /** {@link #apply} into an array of the scratch (valid until the scratch hands out that length again). */
        float[] apply(Feature x, boolean silu, ActivationScratch scratch) {
            if (scratch == null) {
                return apply(x, silu);
            }
            if (x.c() != channels) {
                throw new IllegalArgumentException("group norm over " + channels + " channels got " + x.c());
            }
            float[] y = scratch.take(x.data().length);
            Ops.groupNormInto(x.data(), y, x.batch(), x.pixels(), channels, groups, gamma, beta, eps, silu);
            return y;
        }

        /** {@link #apply} over x's own array (x is overwritten): for activations nothing else reads afterwards. */
        float[] applyInPlace(Feature x, boolean silu) {
            if (x.c() != channels) {
                throw new IllegalArgumentException("group norm over " + channels + " channels got " + x.c());
            }
            Ops.groupNormInto(x.data(), x.data(), x.batch(), x.pixels(), channels, groups, gamma, beta, eps, silu);
            return x.data();
        }
    }

    /** LayerNorm over the channels of every row. */
    record LayerNorm(float[] gamma, float[] beta, int channels, float eps) {
        float[] apply(float[] x, int rows) {
            return Ops.layerNorm(x, rows, channels, gamma, beta, eps);
        }
    }

    /** A convolution of a feature map (output size from the convolution's stride and padding). */
    static Feature conv(Conv2d conv, Feature x) {
        float[] y = conv.forward(x.data(), x.batch(), x.h(), x.w());
        return new Feature(y, x.batch(), conv.outH(x.h()), conv.outW(x.w()), conv.out());
    }

    /**
     * {@code time_embed} and, for SDXL's adm vector, {@code label_emb}: silu(time_embed(sinusoid(t)) + label_emb(y)),
     * the vector every res block projects. label1/label2 are null without an adm input.
     */
    record TimeEmbed(int sinusoidDim, Linear time1, Linear time2, Linear label1, Linear label2) {
        static TimeEmbed load(UNetTensors t, int sinusoidDim, int timeEmbedDim, int admInChannels) {
            return new TimeEmbed(sinusoidDim, t.linear("time_embed.0", sinusoidDim),
                    t.linear("time_embed.2", timeEmbedDim),
                    admInChannels > 0 ? t.linear("label_emb.0.0", admInChannels) : null,
                    admInChannels > 0 ? t.linear("label_emb.0.2", timeEmbedDim) : null);
        }

        float[] forward(float[] timesteps, float[] y, int batch) {
            float[] t = TimestepEmbedding.sinusoid(timesteps, sinusoidDim);
            float[] h = time1.forward(t, batch);
            Ops.siluInPlace(h);
            float[] emb = time2.forward(h, batch);
            if (label1 != null) {
                float[] a = label1.forward(y, batch);
                Ops.siluInPlace(a);
                Ops.addInPlace(emb, label2.forward(a, batch));
            }
            Ops.siluInPlace(emb);
            return emb;
        }
    }
}
