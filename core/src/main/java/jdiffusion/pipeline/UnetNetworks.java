package jdiffusion.pipeline;

import jdiffusion.sampling.DiscreteModel;

/**
 * Public access to the pipeline's conditioned UNet ({@link UnetNetwork}: CFG rows batched [uncond, cond], SDXL adm)
 * for callers that drive the sampler node by node, as the workflow engine's KSampler does. A thin door, no logic.
 */
public final class UnetNetworks {
    private UnetNetworks() {
    }

    /**
     * The UNet of {@code models} bound to one prompt's conditioning.
     *
     * @param uncond null when no uncond pass will be requested
     * @param height image height in pixels (latent height * 8), also SDXL's size conditioning
     * @param width  image width in pixels
     */
    public static DiscreteModel.Network of(PipelineModels models, TextCond cond, TextCond uncond, int batch,
            int height, int width) {
        return new UnetNetwork(models, cond, uncond, batch, height, width);
    }

    /**
     * The same, steered by ControlNets: condControl on the cond rows, uncondControl on the uncond rows (null or
     * empty: none; the same stack runs once on the whole CFG batch).
     */
    public static DiscreteModel.Network of(PipelineModels models, TextCond cond, TextCond uncond, int batch,
            int height, int width, ControlStack condControl, ControlStack uncondControl) {
        return new UnetNetwork(models, cond, uncond, batch, height, width).withControl(condControl, uncondControl);
    }
}
