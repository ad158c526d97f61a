package jdiffusion.sampling;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The samplers by ComfyUI name ({@code KSampler.SAMPLERS}). Each family file contributes its entries through
 * {@link #register}; the {@code *_gpu} names are aliases of their CPU twins (same code: only the device of the
 * Brownian tree differs in ComfyUI).
 */
public final class Samplers {

    /** Every sampler name ComfyUI's KSampler accepts, in its order. */
    public static final List<String> NAMES = List.of("euler", "euler_cfg_pp", "euler_ancestral",
            "euler_ancestral_cfg_pp", "heun", "heunpp2", "exp_heun_2_x0", "exp_heun_2_x0_sde", "dpm_2",
            "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
            "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
            "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
            "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
            "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
            "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2");

    /** KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS: computed with steps + 1 sigmas, the penultimate one dropped. */
    public static final java.util.Set<String> DISCARD_PENULTIMATE_SIGMA = java.util.Set.of("dpm_2", "dpm_2_ancestral",
            "uni_pc", "uni_pc_bh2");

    private static final Map<String, SamplerInfo> REGISTRY = new LinkedHashMap<>();

    static {
        // samp1 families
        register(EulerSamplers.all());
        register(HeunSamplers.all());
        register(LmsSampler.all());
        register(DpmppSamplers.all());
        register(StepSamplers.all());
        register(IpndmSamplers.all());
        register(ResMultistepSamplers.all());
        register(GradientEstimationSamplers.all());
        register(ExpHeunSampler.all());
        // samp2 families: add register(...) lines below this comment
        register(SdeSamplers.all());
        register(SeedsSamplers.all());
        register(DeisSampler.all());
        register(DpmSolverSamplers.all());
        register(SaSolver.all());
        register(UniPcSampler.all());
    }

    private Samplers() {
    }

    private static void register(List<SamplerInfo> family) {
        for (SamplerInfo entry : family) {
            SamplerInfo s = entry;
            if (!NAMES.contains(s.name())) {
                throw new IllegalStateException("sampler " + s.name() + " is not a ComfyUI sampler name");
            }
            if (DISCARD_PENULTIMATE_SIGMA.contains(s.name())) {
                s = s.dropPenultimate();
            }
            REGISTRY.put(s.name(), s);
            String gpu = s.name() + "_gpu";
            if (NAMES.contains(gpu)) {
                REGISTRY.put(gpu, s.renamed(gpu));
            }
        }
    }

    /**
     * The sampler named name. Unknown names fail with the list of valid ones; valid ComfyUI names without an
     * implementation fail with "sampler X not implemented".
     */
    public static SamplerInfo get(String name) {
        SamplerInfo s = REGISTRY.get(name);
        if (s != null) {
            return s;
        }
        if (NAMES.contains(name)) {
            throw new IllegalArgumentException("sampler " + name + " not implemented");
        }
        throw new IllegalArgumentException("unknown sampler '" + name + "'; valid samplers: " + String.join(", ", NAMES));
    }

    public static boolean isImplemented(String name) {
        return REGISTRY.containsKey(name);
    }

    /** The implemented names, in ComfyUI's order. */
    public static List<String> implemented() {
        return NAMES.stream().filter(REGISTRY::containsKey).toList();
    }
}
