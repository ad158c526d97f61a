package jdiffusion.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * Sampler and scheduler names the pipeline accepts. Schedulers are ComfyUI's names (KSampler semantics) plus
 * diffusers' timestep spacings {@code leading}, {@code linspace}, {@code trailing} (diffusers semantics).
 */
public final class Names {
    /** ComfyUI's SCHEDULER_NAMES, in its order. */
    public static final List<String> COMFY_SCHEDULERS = List.of("simple", "sgm_uniform", "karras", "exponential",
            "ddim_uniform", "beta", "normal", "linear_quadratic", "kl_optimal");
    /** diffusers' EulerDiscreteScheduler timestep spacings. */
    public static final List<String> DIFFUSERS_SPACINGS = List.of("leading", "linspace", "trailing");

    private Names() {
    }

    public static List<String> schedulers() {
        List<String> all = new ArrayList<>(COMFY_SCHEDULERS);
        all.addAll(DIFFUSERS_SPACINGS);
        return all;
    }

    public static boolean isDiffusersSpacing(String scheduler) {
        return DIFFUSERS_SPACINGS.contains(scheduler);
    }

    static void checkScheduler(String name) {
        if (!schedulers().contains(name)) {
            throw new GenerateException("unknown scheduler '" + name + "'; valid schedulers: "
                    + String.join(", ", schedulers()));
        }
    }

    static void checkSampler(String name) {
        SamplerBinding.check(name);
    }
}
