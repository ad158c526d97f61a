package jdiffusion.sampling;

/**
 * A registered sampler under its ComfyUI name.
 *
 * @param noise                how its noise source is made ({@link NoiseSource#NONE} when it draws none)
 * @param needsUncond          the guider must evaluate uncond even at cfg 1 ({@code _cfg_pp}: ComfyUI's
 *                             disable_cfg1_optimization)
 * @param dropsPenultimateSigma KSampler computes steps + 1 sigmas and drops the penultimate one (dpm_2,
 *                             dpm_2_ancestral, uni_pc, uni_pc_bh2)
 */
public record SamplerInfo(String name, Sampler sampler, NoiseSource.Factory noise, boolean needsUncond,
        boolean dropsPenultimateSigma) {

    public static SamplerInfo plain(String name, Sampler sampler) {
        return new SamplerInfo(name, sampler, NoiseSource.NONE, false, false);
    }

    public static SamplerInfo withNoise(String name, Sampler sampler, NoiseSource.Factory noise) {
        return new SamplerInfo(name, sampler, noise, false, false);
    }

    public SamplerInfo cfgPp() {
        return new SamplerInfo(name, sampler, noise, true, dropsPenultimateSigma);
    }

    public SamplerInfo dropPenultimate() {
        return new SamplerInfo(name, sampler, noise, needsUncond, true);
    }

    public SamplerInfo renamed(String alias) {
        return new SamplerInfo(alias, sampler, noise, needsUncond, dropsPenultimateSigma);
    }
}
