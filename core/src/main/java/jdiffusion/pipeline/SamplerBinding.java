package jdiffusion.pipeline;

import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.Samplers;

/** Sampler names to implementations, with the pipeline's error messages. */
final class SamplerBinding {
    private SamplerBinding() {
    }

    static void check(String name) {
        sampler(name);
    }

    static SamplerInfo sampler(String name) {
        try {
            return Samplers.get(name);
        } catch (IllegalArgumentException e) {
            if (Samplers.NAMES.contains(name)) {
                throw new GenerateException("sampler '" + name + "' is not implemented yet; available: "
                        + String.join(", ", Samplers.implemented()));
            }
            throw new GenerateException("unknown sampler '" + name + "'; valid samplers: "
                    + String.join(", ", Samplers.implemented()));
        }
    }
}
