package jdiffusion.workflow;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.pipeline.TextCond;

/**
 * The values that flow along a workflow's links. Loaders hand out cheap descriptions (which file, which LoRAs at which
 * strength, which sampling); the weights themselves are loaded on first use through the {@link ModelCache}, so a
 * cached loader costs nothing and two prompts with the same description share one loaded model.
 */
public final class Values {
    private Values() {
    }

    /** A LoRA file at one strength (the UNet's for MODEL, the text encoders' for CLIP). */
    public record LoraUse(Path file, double strength) {
    }

    /**
     * MODEL: a UNet from a checkpoint (or a UNet-only file), LoRAs applied in order, and ModelSamplingDiscrete's
     * override (null sampling = what the file says).
     *
     * @param checkpoint the checkpoint, also the source of the text encoders that a LoRA's family match needs
     * @param unetOnly   the file holds only a UNet (UNETLoader)
     */
    public record ModelRef(Path checkpoint, boolean unetOnly, List<LoraUse> loras, String sampling, boolean zsnr) {
        public ModelRef withLora(LoraUse lora) {
            List<LoraUse> l = new ArrayList<>(loras);
            l.add(lora);
            return new ModelRef(checkpoint, unetOnly, List.copyOf(l), sampling, zsnr);
        }

        public ModelRef withSampling(String s, boolean z) {
            return new ModelRef(checkpoint, unetOnly, loras, s, z);
        }
    }

    /** CLIP: the checkpoint's text encoders, LoRAs at their clip strengths, clip skip (1 = last layer). */
    public record ClipRef(Path checkpoint, List<LoraUse> loras, int clipSkip) {
        public ClipRef withLora(LoraUse lora) {
            List<LoraUse> l = new ArrayList<>(loras);
            l.add(lora);
            return new ClipRef(checkpoint, List.copyOf(l), clipSkip);
        }

        public ClipRef withClipSkip(int skip) {
            return new ClipRef(checkpoint, loras, skip);
        }
    }

    /** VAE: from a checkpoint ({@code first_stage_model.*}) or a standalone VAE file. */
    public record VaeRef(Path file) {
    }

    /**
     * CONDITIONING: one encoded prompt (context and, for SDXL, the pooled embedding), the ControlNets applied to it
     * in the order they were applied (their residuals add) and, after InpaintModelConditioning, what an inpainting
     * UNet gets as extra input channels (null otherwise).
     */
    public record Cond(TextCond text, List<ControlUse> controls, InpaintConcat concat) {
        public Cond {
            controls = List.copyOf(controls);
        }

        public Cond(TextCond text) {
            this(text, List.of(), null);
        }

        public Cond withControl(ControlUse c) {
            List<ControlUse> l = new ArrayList<>(controls);
            l.add(c);
            return new Cond(text, l, concat);
        }

        public Cond withConcat(InpaintConcat c) {
            return new Cond(text, controls, c);
        }
    }

    /** ComfyUI's concat_latent_image (raw VAE latent of the grey-masked pixels) and concat_mask (pixel mask). */
    public record InpaintConcat(Latent latent, Mask mask) {
    }

    /**
     * CONTROL_NET: a ControlNet file; diffBase is the MODEL a "difference" ControlNet's weights are added to
     * (DiffControlNetLoader), null otherwise.
     */
    public record ControlNetRef(Path file, ModelRef diffBase) {
    }

    /** One ControlNet on a conditioning: the hint (IMAGE in [0, 1]), strength and the percent window. */
    public record ControlUse(ControlNetRef net, Image hint, double strength, double startPercent, double endPercent) {
    }

    /**
     * LATENT: raw VAE-space samples (ComfyUI's {@code samples}, not multiplied by the scale factor), NCHW, and its
     * optional {@code noise_mask} (1 = repaint; any size, resized to the latent at sampling), null when none.
     */
    public record Latent(float[] samples, int batch, int channels, int height, int width, Mask noiseMask) {
        public Latent {
            if (samples.length != batch * channels * height * width) {
                throw new IllegalArgumentException("latent of " + samples.length + " values is not " + batch + "x"
                        + channels + "x" + height + "x" + width);
            }
        }

        public Latent(float[] samples, int batch, int channels, int height, int width) {
            this(samples, batch, channels, height, width, null);
        }

        public Latent withNoiseMask(Mask mask) {
            return new Latent(samples, batch, channels, height, width, mask);
        }

        /**
         * ComfyUI's fix_empty_latent_channels: an all-zero latent (EmptyLatentImage's, 4 channels) whose channel count
         * differs from the model's is resized to it (zeros either way), so an SD1 graph's empty latent feeds an SD3
         * model (16 channels) and the reverse; a latent with content is returned as it is.
         */
        public Latent withChannelsIfEmpty(int modelChannels) {
            if (modelChannels == channels) {
                return this;
            }
            for (float v : samples) {
                if (v != 0f) {
                    return this;
                }
            }
            return new Latent(new float[batch * modelChannels * height * width], batch, modelChannels, height, width,
                    noiseMask);
        }
    }

    /** IMAGE: values in [0, 1], NCHW with 3 channels (ComfyUI holds NHWC; only the layout differs). */
    public record Image(float[] pixels, int batch, int height, int width) {
        public Image {
            if (pixels.length != batch * 3 * height * width) {
                throw new IllegalArgumentException("image of " + pixels.length + " values is not " + batch + "x3x"
                        + height + "x" + width);
            }
        }
    }

    /** MASK: [batch, height, width] in [0, 1]. */
    public record Mask(float[] values, int batch, int height, int width) {
        public Mask {
            if (values.length != batch * height * width) {
                throw new IllegalArgumentException("mask of " + values.length + " values is not " + batch + "x"
                        + height + "x" + width);
            }
        }
    }
}
