package jdiffusion.pipeline;

import java.nio.file.Path;
import jdiffusion.sampling.PredictionType;

/**
 * A request with every default filled in, as it ran: what the PNG metadata and the CLI summary report.
 *
 * @param semantics      COMFY for ComfyUI scheduler names (KSampler), DIFFUSERS for leading / linspace / trailing
 * @param negativePrompt null when none was given
 * @param inpaint        the request's mask / outpaint settings, null when it inpaints nothing
 */
public record ResolvedSettings(String family, Semantics semantics, String prompt, String negativePrompt, int width,
        int height, int steps, double cfg, String sampler, String scheduler, long seed, int batch, Path initImage,
        double denoise, PredictionType prediction, int clipSkip, String modelName, String unetName, String vaeName,
        java.util.List<GenerateRequest.LoraSpec> loras, GenerateRequest.ExplicitSchedule schedule,
        java.util.List<GenerateRequest.ControlSpec> controls, GenerateRequest.Inpaint inpaint) {

    /** Settings of a request without inpainting. */
    public ResolvedSettings(String family, Semantics semantics, String prompt, String negativePrompt, int width,
            int height, int steps, double cfg, String sampler, String scheduler, long seed, int batch, Path initImage,
            double denoise, PredictionType prediction, int clipSkip, String modelName, String unetName,
            String vaeName, java.util.List<GenerateRequest.LoraSpec> loras,
            GenerateRequest.ExplicitSchedule schedule, java.util.List<GenerateRequest.ControlSpec> controls) {
        this(family, semantics, prompt, negativePrompt, width, height, steps, cfg, sampler, scheduler, seed, batch,
                initImage, denoise, prediction, clipSkip, modelName, unetName, vaeName, loras, schedule, controls,
                null);
    }

    /** Settings of a request without inpainting or ControlNets. */
    public ResolvedSettings(String family, Semantics semantics, String prompt, String negativePrompt, int width,
            int height, int steps, double cfg, String sampler, String scheduler, long seed, int batch, Path initImage,
            double denoise, PredictionType prediction, int clipSkip, String modelName, String unetName,
            String vaeName, java.util.List<GenerateRequest.LoraSpec> loras,
            GenerateRequest.ExplicitSchedule schedule) {
        this(family, semantics, prompt, negativePrompt, width, height, steps, cfg, sampler, scheduler, seed, batch,
                initImage, denoise, prediction, clipSkip, modelName, unetName, vaeName, loras, schedule,
                java.util.List.of(), null);
    }

    /** Whose reference the run reproduces. */
    public enum Semantics { COMFY, DIFFUSERS }

    public ResolvedSettings {
        controls = controls == null ? java.util.List.of() : java.util.List.copyOf(controls);
    }

    public int latentHeight() {
        return height / 8;
    }

    public int latentWidth() {
        return width / 8;
    }

    public boolean isImg2Img() {
        return initImage != null;
    }
}
